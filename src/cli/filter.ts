// xdp-filter: the filter in a slot of the root array, its configuration, its
// source drop lists and its counters (ecbpf xdp_filter's flags and status).
import { RUN_DESCRIPTION, RUN_OPTION, runRequest, runSection } from './run.js';
import yargs from 'yargs';
import { UsageError } from '../errors.js';
import { parseInterfaceList } from '../net/interface.js';
import { parseSlot } from '../root/slot.js';
import { parsePps, parseTag, type FilterConfig } from '../programs/filter/config.js';
import { attachFilter, detachFilter, dropPrefixes, undropPrefixes, withFilters } from '../programs/filter/control.js';
import { FILTER, STATS } from '../programs/filter/layout.js';
import { formatPrefix, parsePrefix, type Prefix } from '../programs/filter/prefix.js';
import { filterStatus, type FilterStatus } from '../programs/filter/status.js';
import { formatTime, table, toJson } from './format.js';
import { EXIT_OK, finishParser, requirePrivileges } from './main.js';

export const COMMAND = 'xdp-filter';
const ACTIONS = ['attach', 'detach', 'drop', 'no-drop', 'clear', 'clear-status', 'status'] as const;
type ActionName = (typeof ACTIONS)[number];

/** The flags each action takes besides --interface and --json. */
const EXTRA: Record<ActionName, string[]> = {
  attach: ['slot', 'frags-drop', 'no-frags-drop', 'ptb-max-pps'],
  detach: [],
  drop: ['ips', 'tags'],
  'no-drop': ['ips'],
  clear: [],
  'clear-status': [],
  status: [],
};

export function parser(args: string[]) {
  return finishParser(
    yargs(args)
      .scriptName(COMMAND)
      .parserConfiguration({ 'boolean-negation': false })
      .usage(
        [
          'Usage:',
          '  xdp-filter --attach --interface eth0[,eth1] [--slot 2] [--frags-drop|--no-frags-drop] [--ptb-max-pps N]',
          '  xdp-filter --detach --interface eth0[,eth1]',
          '  xdp-filter --drop --ips 192.0.2.0/24,2001:db8::/32 [--tags TAG[,TAG...]] --interface eth0[,eth1]',
          '  xdp-filter --no-drop --ips PREFIX[,PREFIX...] --interface eth0[,eth1]',
          '  xdp-filter --clear --interface eth0[,eth1]',
          '  xdp-filter --clear-status --interface eth0[,eth1]',
          '  xdp-filter --status [--interface eth0[,eth1]] [--json]',
          '',
          'Drops malformed frames, packets from listed source prefixes and, with',
          '--frags-drop, fragments (answering first fragments with Packet Too Big,',
          'at most --ptb-max-pps per second). Needs xdp-root --attach first.',
        ].join('\n'),
      )
      .options({
        attach: { type: 'boolean', describe: 'Put the filter in a slot, or change its configuration' },
        detach: { type: 'boolean', describe: 'Take the filter out and remove its maps' },
        drop: { type: 'boolean', describe: 'Add source prefixes to the drop lists' },
        'no-drop': { type: 'boolean', describe: 'Remove source prefixes from the drop lists' },
        clear: { type: 'boolean', describe: 'Empty the drop lists' },
        'clear-status': { type: 'boolean', describe: 'Zero the counters and the per-prefix hits' },
        status: { type: 'boolean', describe: 'Show configuration, drop lists and counters' },
        interface: { alias: 'i', type: 'string', describe: 'Interface name(s), comma separated' },
        slot: { alias: 's', type: 'string', describe: `Slot of the root array, 0..7 (default ${FILTER.defaultSlot})` },
        'frags-drop': { type: 'boolean', describe: 'Drop IPv4 fragments and IPv6 packets with a Fragment header' },
        'no-frags-drop': { type: 'boolean', describe: 'Let fragments through' },
        'ptb-max-pps': { type: 'string', describe: 'Packet Too Big replies per second, all CPUs together; 0: none' },
        ips: { type: 'string', describe: 'Prefixes: IPv4 or IPv6, comma separated (a bare address is one host)' },
        tags: { type: 'string', describe: 'One tag for all prefixes, or one per prefix, comma separated (63 bytes each; \\, is a comma in a tag; a single prefix takes the whole text)' },
        json: { alias: 'j', type: 'boolean', describe: 'Print JSON' },
      })
      .options(RUN_OPTION)
      .command('run', RUN_DESCRIPTION),
    COMMAND,
  );
}

type Args = Awaited<ReturnType<ReturnType<typeof parser>['parse']>>;

function value(argv: Args, name: string): string | undefined {
  const v = (argv as Record<string, unknown>)[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new UsageError(`--${name} given more than once: expected one value`);
  return String(v);
}

export type Request =
  | { action: 'attach'; ifaces: string[]; slot: number; changes: Partial<FilterConfig> }
  | { action: 'drop'; ifaces: string[]; prefixes: Prefix[]; tags: string[] }
  | { action: 'no-drop'; ifaces: string[]; prefixes: Prefix[] }
  | { action: 'detach' | 'clear' | 'clear-status'; ifaces: string[] }
  | { action: 'status'; ifaces?: string[] };

/** One prefix takes the whole text as its tag; several take it split at
 *  commas, where `\,` is a comma inside a tag. */
function splitTags(text: string, prefixes: number): string[] {
  if (prefixes === 1) return [text];
  return text.split(/(?<!\\),/).map((t) => t.replace(/\\,/g, ','));
}

/** Check the whole request before anything touches the kernel. */
export function validate(argv: Args): Request {
  const given = (name: string) => {
    const v = (argv as Record<string, unknown>)[name];
    return v !== undefined && v !== false;
  };
  const chosen = ACTIONS.filter((a) => given(a));
  if (chosen.length !== 1) {
    throw new UsageError(
      chosen.length
        ? `choose one of --${ACTIONS.join(', --')}; got --${chosen.join(' and --')}`
        : `nothing to do: expected one of --${ACTIONS.join(', --')} (see xdp-filter --help)`,
    );
  }
  const action = chosen[0];
  for (const flag of Object.values(EXTRA).flat()) {
    if (given(flag) && !EXTRA[action].includes(flag)) {
      throw new UsageError(`--${flag} does not go with --${action}`);
    }
  }
  const ifText = value(argv, 'interface');
  if (ifText === '' || (ifText === undefined && action !== 'status')) throw new UsageError(`--${action} needs --interface`);
  const ifaces = ifText === undefined ? undefined : parseInterfaceList(ifText);
  switch (action) {
    case 'attach': {
      if (given('frags-drop') && given('no-frags-drop')) throw new UsageError('choose one of --frags-drop and --no-frags-drop');
      const changes: Partial<FilterConfig> = {};
      if (given('frags-drop')) changes.frags_drop = true;
      if (given('no-frags-drop')) changes.frags_drop = false;
      const pps = value(argv, 'ptb-max-pps');
      if (pps !== undefined) changes.ptb_max_pps = parsePps(pps);
      const slot = value(argv, 'slot');
      return { action, ifaces: ifaces!, slot: slot === undefined ? FILTER.defaultSlot : parseSlot(slot), changes };
    }
    case 'drop':
    case 'no-drop': {
      const ips = value(argv, 'ips');
      if (ips === undefined || ips === '') throw new UsageError(`--${action} needs --ips`);
      const items = ips.split(',').map((s) => s.trim());
      if (items.some((s) => s === '')) {
        throw new UsageError(`invalid prefix list '${ips}': expected prefixes separated by commas, like 192.0.2.0/24,2001:db8::/32`);
      }
      const prefixes = items.map(parsePrefix);
      if (action === 'no-drop') return { action, ifaces: ifaces!, prefixes };
      const tagText = value(argv, 'tags');
      const tags = tagText === undefined ? [''] : splitTags(tagText, prefixes.length).map(parseTag);
      if (tags.length !== 1 && tags.length !== prefixes.length) {
        throw new UsageError(`--tags has ${tags.length} tags for ${prefixes.length} prefixes: expected one tag, or one per prefix`);
      }
      return { action, ifaces: ifaces!, prefixes, tags: prefixes.map((_, i) => tags[tags.length === 1 ? 0 : i]) };
    }
    case 'status':
      return { action, ifaces };
    default:
      return { action, ifaces: ifaces! };
  }
}

export function formatStatus(all: Record<string, FilterStatus>): string {
  const out: string[] = [];
  for (const [ifname, s] of Object.entries(all)) {
    const c = s.configuration;
    out.push(
      `=================== Status for interface '${ifname}' ===================`,
      'Current Configuration:',
      '',
      `frags_drop? ${c.frags_drop}`,
      `ptb_send? ${c.ptb_send}`,
      `ptb_max_pps: ${c.ptb_max_pps}`,
      '',
      `Drop Maps for interface '${ifname}':`,
      table(
        ['Address', 'PrefixLen', 'Tag', 'Load Time', 'Hits'],
        s.source_drops.map((d) => [d.address, d.prefix_len, d.tag, formatTime(d.load_time), d.hits]),
      ),
      '',
      `Stats for interface '${ifname}':`,
      '',
      ...STATS.map((name) => `${name}: ${s.stats[name]}`),
    );
  }
  if (!out.length) out.push('xdp-filter is not attached to any interface.');
  return out.join('\n');
}

const list = (ps: Prefix[]) => ps.map(formatPrefix).join(', ');

export async function main(args: string[]): Promise<number> {
  const argv = await parser(args).parse();
  const config = runRequest(COMMAND, argv, ACTIONS);
  if (config !== null) return runSection(COMMAND, config, async () => (await import('../programs/filter/service.js')).FILTER_SERVICE);
  const req = validate(argv);
  requirePrivileges();
  const print = (text: string) => process.stdout.write(`${text}\n`);
  const json = !!argv.json;
  switch (req.action) {
    case 'attach': {
      const results = attachFilter(req.ifaces, req.slot, req.changes);
      if (json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { slot: r.slot, id: r.id, changed: r.changed, configuration: r.config }]))));
      else {
        for (const r of results) {
          const cfg = `frags_drop ${r.config.frags_drop}, ptb_max_pps ${r.config.ptb_max_pps}`;
          print(r.changed
            ? `Attached xdp_filter (id ${r.id}) to slot ${r.slot} of ${r.ifname}: ${cfg}.`
            : `xdp_filter already in slot ${r.slot} of ${r.ifname}: ${cfg}.`);
        }
      }
      break;
    }
    case 'detach': {
      const results = detachFilter(req.ifaces);
      if (json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { attached: false, changed: r.changed }]))));
      else for (const r of results) print(r.changed ? `Detached xdp_filter from ${r.ifname}.` : `xdp_filter was not attached to ${r.ifname}; nothing to detach.`);
      break;
    }
    case 'drop': {
      dropPrefixes(req.ifaces, req.prefixes, req.tags);
      const added = req.prefixes.map(formatPrefix);
      if (json) print(toJson(Object.fromEntries(req.ifaces.map((i) => [i, { added }]))));
      else for (const i of req.ifaces) print(`Dropping sources ${list(req.prefixes)} on ${i}.`);
      break;
    }
    case 'no-drop': {
      const results = undropPrefixes(req.ifaces, req.prefixes);
      if (json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { removed: r.removed.map(formatPrefix) }]))));
      else {
        for (const r of results) {
          const missing = req.prefixes.filter((p) => !r.removed.includes(p));
          if (r.removed.length) print(`No longer dropping ${list(r.removed)} on ${r.ifname}.`);
          if (missing.length) print(`Not listed on ${r.ifname}: ${list(missing)}.`);
        }
      }
      break;
    }
    case 'clear': {
      const counts = withFilters(req.ifaces, (maps) => maps.clearLists());
      if (json) print(toJson(Object.fromEntries(req.ifaces.map((i, n) => [i, { removed: counts[n] }]))));
      else req.ifaces.forEach((i, n) => print(`Emptied the drop lists of ${i} (${counts[n]} prefixes removed).`));
      break;
    }
    case 'clear-status': {
      withFilters(req.ifaces, (maps) => maps.clearStats());
      if (json) print(toJson({ cleared: req.ifaces }));
      else print(`Cleared the filter counters on ${req.ifaces.join(', ')}.`);
      break;
    }
    case 'status': {
      const all = filterStatus(req.ifaces);
      print(json ? toJson(all) : formatStatus(all));
      break;
    }
  }
  return EXIT_OK;
}
