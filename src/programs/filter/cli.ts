// xdp-filter's own options and actions (attach, detach, status and run are
// every subprogram's; see src/cli/subprogram.ts).
import { flag, optional, required, type ActionSpec, type Args, type OptionSpec } from '../../command.js';
import { UsageError } from '../../errors.js';
import { toJson } from '../../format.js';
import { parseInterfaceList } from '../../net/interface.js';
import type { Placed } from '../../root/place.js';
import type { AttachHook } from '../contract.js';
import { parsePps, parseTag, type FilterConfig } from './config.js';
import { configure, dropPrefixes, undropPrefixes, withFilters } from './control.js';
import { formatPrefix, parsePrefix, type Prefix } from './prefix.js';

export const OPTIONS: OptionSpec[] = [
  { name: 'ips', type: 'string', placeholder: 'PREFIX[,PREFIX...]', describe: 'Prefixes: IPv4 or IPv6, comma separated (a bare address is one host)' },
  { name: 'tags', type: 'string', placeholder: 'TAG[,TAG...]', describe: 'One tag for all prefixes, or one per prefix, comma separated (63 bytes each; \\, is a comma in a tag; a single prefix takes the whole text)' },
];

export const ATTACH_OPTIONS: OptionSpec[] = [
  { name: 'frags-drop', type: 'boolean', describe: 'Drop IPv4 fragments and IPv6 packets with a Fragment header' },
  { name: 'no-frags-drop', type: 'boolean', describe: 'Let fragments through' },
  { name: 'ptb-max-pps', type: 'string', placeholder: 'N', describe: 'Packet Too Big replies per second, all CPUs together; 0: none' },
];

/** The configuration changes --attach asks for (only the flags given). */
function attachChanges(args: Args): Partial<FilterConfig> {
  if (flag(args, 'frags-drop') && flag(args, 'no-frags-drop')) throw new UsageError('choose one of --frags-drop and --no-frags-drop');
  const changes: Partial<FilterConfig> = {};
  if (flag(args, 'frags-drop')) changes.frags_drop = true;
  if (flag(args, 'no-frags-drop')) changes.frags_drop = false;
  const pps = optional(args, 'ptb-max-pps');
  if (pps !== undefined) changes.ptb_max_pps = parsePps(pps);
  return changes;
}

export const ATTACH: AttachHook<Partial<FilterConfig>> = {
  options: ATTACH_OPTIONS,
  parse: attachChanges,
  configure(placed: Placed[], changes) {
    return configure(placed, changes).map((c) => ({
      json: { configuration: c },
      text: `frags_drop ${c.frags_drop}, ptb_max_pps ${c.ptb_max_pps}`,
    }));
  },
};

/** One prefix takes the whole text as its tag; several take it split at
 *  commas, where `\,` is a comma inside a tag. */
function splitTags(text: string, prefixes: number): string[] {
  if (prefixes === 1) return [text];
  return text.split(/(?<!\\),/).map((t) => t.replace(/\\,/g, ','));
}

function prefixList(args: Args): Prefix[] {
  const ips = required(args, 'ips');
  const items = ips.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) {
    throw new UsageError(`invalid prefix list '${ips}': expected prefixes separated by commas, like 192.0.2.0/24,2001:db8::/32`);
  }
  return items.map(parsePrefix);
}

const ifaces = (args: Args) => parseInterfaceList(required(args, 'interface'));
const list = (ps: Prefix[]) => ps.map(formatPrefix).join(', ');

export const ACTIONS: Array<ActionSpec<any>> = [
  {
    name: 'drop',
    describe: 'Add source prefixes to the drop lists',
    requires: ['ips', 'interface'],
    accepts: ['tags'],
    parse(args) {
      const prefixes = prefixList(args);
      const tagText = optional(args, 'tags');
      const tags = tagText === undefined ? [''] : splitTags(tagText, prefixes.length).map(parseTag);
      if (tags.length !== 1 && tags.length !== prefixes.length) {
        throw new UsageError(`--tags has ${tags.length} tags for ${prefixes.length} prefixes: expected one tag, or one per prefix`);
      }
      return { ifaces: ifaces(args), prefixes, tags: prefixes.map((_, i) => tags[tags.length === 1 ? 0 : i]) };
    },
    run(req: { ifaces: string[]; prefixes: Prefix[]; tags: string[] }, ctx) {
      dropPrefixes(req.ifaces, req.prefixes, req.tags);
      const added = req.prefixes.map(formatPrefix);
      if (ctx.json) ctx.print(toJson(Object.fromEntries(req.ifaces.map((i) => [i, { added }]))));
      else for (const i of req.ifaces) ctx.print(`Dropping sources ${list(req.prefixes)} on ${i}.`);
    },
  },
  {
    name: 'no-drop',
    describe: 'Remove source prefixes from the drop lists',
    requires: ['ips', 'interface'],
    parse: (args) => ({ ifaces: ifaces(args), prefixes: prefixList(args) }),
    run(req: { ifaces: string[]; prefixes: Prefix[] }, ctx) {
      const results = undropPrefixes(req.ifaces, req.prefixes);
      if (ctx.json) {
        ctx.print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { removed: r.removed.map(formatPrefix) }]))));
        return;
      }
      for (const r of results) {
        const missing = req.prefixes.filter((p) => !r.removed.includes(p));
        if (r.removed.length) ctx.print(`No longer dropping ${list(r.removed)} on ${r.ifname}.`);
        if (missing.length) ctx.print(`Not listed on ${r.ifname}: ${list(missing)}.`);
      }
    },
  },
  {
    name: 'clear',
    describe: 'Empty the drop lists',
    requires: ['interface'],
    parse: (args) => ({ ifaces: ifaces(args) }),
    run(req: { ifaces: string[] }, ctx) {
      const counts = withFilters(req.ifaces, (maps) => maps.clearLists());
      if (ctx.json) ctx.print(toJson(Object.fromEntries(req.ifaces.map((i, n) => [i, { removed: counts[n] }]))));
      else req.ifaces.forEach((i, n) => ctx.print(`Emptied the drop lists of ${i} (${counts[n]} prefixes removed).`));
    },
  },
  {
    name: 'clear-status',
    describe: 'Zero the counters and the per-prefix hits',
    requires: ['interface'],
    parse: (args) => ({ ifaces: ifaces(args) }),
    run(req: { ifaces: string[] }, ctx) {
      withFilters(req.ifaces, (maps) => maps.clearStats());
      if (ctx.json) ctx.print(toJson({ cleared: req.ifaces }));
      else ctx.print(`Cleared the filter counters on ${req.ifaces.join(', ')}.`);
    },
  },
];
