// xdp-root: attach the root array to interfaces, fill and empty its slots,
// show what every slot decided.
import yargs from 'yargs';
import { UsageError } from '../errors.js';
import { parseInterfaceList } from '../net/interface.js';
import { attach, detach, parseMode } from '../root/attach.js';
import { loadIntoSlot, parseSlot, unloadSlot } from '../root/slot.js';
import { clearCounters, status, type InterfaceStatus } from '../root/status.js';
import { ACTIONS } from '../root/stats.js';
import { DEFAULT_CONFIG } from '../service/defaults.js';
import { formatTime, table, toJson } from './format.js';
import { EXIT_OK, finishParser, requirePrivileges } from './main.js';

export const COMMAND = 'xdp-root';
const ACTION_FLAGS = ['attach', 'detach', 'load', 'unload', 'status', 'clear'] as const;

export function parser(args: string[]) {
  return finishParser(
    yargs(args)
      .scriptName(COMMAND)
      .usage(
        [
          'Usage:',
          '  xdp-root --attach --interface eth0[,eth1] [--mode auto|native|skb] [--force]',
          '  xdp-root --detach --interface eth0[,eth1]',
          '  xdp-root --load --interface eth0 --slot N --object FILE --program NAME [--replace] [--force]',
          '  xdp-root --unload --interface eth0 --slot N',
          '  xdp-root --status [--interface eth0[,eth1]] [--json] [--clear]',
          '  xdp-root --clear [--interface eth0[,eth1]]',
          '  xdp-root run [--config /etc/xdplb/xdplb.json] [--dry-run]',
          '',
          'The root XDP program tail-calls slots 0..7 in order; each slot holds a',
          'program that follows the slot protocol. State lives in /sys/fs/bpf/xdplb.',
        ].join('\n'),
      )
      .options({
        attach: { type: 'boolean', describe: 'Attach the root array to the interfaces' },
        detach: { type: 'boolean', describe: 'Detach the root array and remove its pins' },
        load: { type: 'boolean', describe: 'Load a program into a slot (one atomic update)' },
        unload: { type: 'boolean', describe: 'Empty a slot' },
        status: { type: 'boolean', describe: 'Show slots and per-slot XDP action counters' },
        clear: { type: 'boolean', describe: 'Zero the counters (after printing, with --status)' },
        interface: { alias: 'i', type: 'string', describe: 'Interface name(s), comma separated' },
        mode: { alias: 'm', type: 'string', default: 'auto', describe: 'XDP mode: native, skb (generic) or auto (native, else skb)' },
        force: { type: 'boolean', describe: 'Attach over a foreign XDP program / load a program that ignores the slot protocol' },
        slot: { alias: 's', type: 'string', describe: 'Slot number, 0..7' },
        object: { alias: 'o', type: 'string', describe: 'BPF object file (ELF)' },
        program: { alias: 'p', type: 'string', describe: 'Program name in the object' },
        replace: { type: 'boolean', describe: 'Replace the program already in the slot' },
        json: { alias: 'j', type: 'boolean', describe: 'Print JSON' },
        config: { alias: 'c', type: 'string', describe: `With run: the config file (default ${DEFAULT_CONFIG})` },
        'dry-run': { type: 'boolean', describe: 'With run: print which interfaces would be attached and why, change nothing' },
      })
      .command('run', 'Run as a service (systemd Type=notify): attach per the config, reload on SIGHUP, detach on SIGTERM'),
    COMMAND,
  );
}

type Args = Awaited<ReturnType<ReturnType<typeof parser>['parse']>>;

function required(argv: Args, name: 'interface' | 'slot' | 'object' | 'program', action: string): string {
  const value = argv[name];
  if (value === undefined || value === '') throw new UsageError(`--${action} needs --${name}`);
  if (Array.isArray(value)) throw new UsageError(`--${name} given more than once: expected one value`);
  return String(value);
}

function single(list: string[], action: string): string {
  if (list.length !== 1) throw new UsageError(`--${action} takes one interface, got '${list.join(',')}'`);
  return list[0];
}

/** Check the whole request before anything touches the kernel. */
export function validate(argv: Args) {
  if (argv._[0] === 'run') {
    const stray = ACTION_FLAGS.filter((a) => argv[a]);
    if (stray.length) throw new UsageError(`run takes no --${stray[0]}: it reads what to do from --config`);
    return { action: 'run' as const, config: argv.config ?? DEFAULT_CONFIG, dryRun: !!argv['dry-run'] };
  }
  if (argv.config !== undefined || argv['dry-run']) throw new UsageError('--config and --dry-run go with run (see xdp-root --help)');
  const chosen = ACTION_FLAGS.filter((a) => argv[a]);
  const action = chosen.filter((a) => !(a === 'clear' && argv.status));
  if (action.length !== 1) {
    throw new UsageError(
      action.length
        ? `choose one of --${ACTION_FLAGS.join(', --')}; got --${action.join(' and --')}`
        : `nothing to do: expected one of --${ACTION_FLAGS.join(', --')} (see xdp-root --help)`,
    );
  }
  const mode = parseMode(argv.mode);
  const ifaces = argv.interface === undefined ? undefined : parseInterfaceList(required(argv, 'interface', action[0]));
  switch (action[0]) {
    case 'attach':
    case 'detach':
      return { action: action[0], ifaces: parseInterfaceList(required(argv, 'interface', action[0])), mode };
    case 'load':
      return {
        action: 'load' as const,
        ifname: single(parseInterfaceList(required(argv, 'interface', 'load')), 'load'),
        slot: parseSlot(required(argv, 'slot', 'load')),
        object: required(argv, 'object', 'load'),
        program: required(argv, 'program', 'load'),
      };
    case 'unload':
      return {
        action: 'unload' as const,
        ifname: single(parseInterfaceList(required(argv, 'interface', 'unload')), 'unload'),
        slot: parseSlot(required(argv, 'slot', 'unload')),
      };
    default:
      return { action: action[0], ifaces };
  }
}

const COLUMNS = ['SLOT', 'ID', 'NAME', 'LOAD TIME', ...ACTIONS];

export function formatStatus(all: Record<string, InterfaceStatus>): string {
  const out: string[] = [];
  for (const [ifname, s] of Object.entries(all)) {
    if (!s.root_loaded) {
      out.push(
        s.stale_pins
          ? `Root array of ${ifname} is pinned but not attached (interface gone, replaced, or in another namespace): run xdp-root --attach or --detach.`
          : `Root array not attached to interface ${ifname}.`,
      );
      continue;
    }
    const rows = s.subprograms.map((p) =>
      p.prog_loaded
        ? [p.slot, p.id!, p.name!, formatTime(p.load_time!), ...ACTIONS.map((a) => p.statistics[a])]
        : [p.slot, '-', '-', '-', ...ACTIONS.map(() => '-')],
    );
    rows.push(['root', s.root_id, 'xdp_root', '(all slots empty)', ...ACTIONS.map((a) => s.root.statistics[a])]);
    rows.push(['total', '', '', '(final verdicts)', ...ACTIONS.map((a) => s.statistics[a])]);
    out.push(`Interface ${ifname} status (${s.mode} mode):`, table(COLUMNS, rows));
    if (s.slot_mask_mismatch) out.push(formatMismatch(ifname, s.slot_mask_mismatch));
  }
  if (!out.length) out.push('No root array attached to any interface.');
  return out.join('\n');
}

/** The root tail-calls only the slots in its mask; say where that is not
 *  what the slots hold, and what rewrites it. */
function formatMismatch(ifname: string, m: { skipped: number[]; empty: number[] }): string {
  const list = (slots: number[]) => (slots.length > 1 ? `slots ${slots.join(', ')}` : `slot ${slots[0]}`);
  const what = [
    ...(m.skipped.length ? [`${list(m.skipped)} ${m.skipped.length > 1 ? 'hold programs' : 'holds a program'} that the root skips (put there by another tool?)`] : []),
    ...(m.empty.length ? [`${list(m.empty)} ${m.empty.length > 1 ? 'are' : 'is'} empty but still in the mask`] : []),
  ];
  return `Warning: the slot mask of ${ifname} disagrees with its slots: ${what.join('; ')}. ` +
    `Any xdp-root --load or --unload on ${ifname} rewrites the mask from the slots.`;
}

export async function main(args: string[]): Promise<number> {
  const argv = await parser(args).parse();
  const req = validate(argv);
  requirePrivileges();
  const print = (text: string) => process.stdout.write(`${text}\n`);
  switch (req.action) {
    case 'attach': {
      const results = attach(req.ifaces!, req.mode!, !!argv.force);
      for (const r of results) for (const w of r.warnings) process.stderr.write(`${COMMAND}: warning: ${w}\n`);
      if (argv.json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { attached: true, mode: r.mode, changed: r.changed }]))));
      else for (const r of results) print(r.changed ? `Attached root array to ${r.ifname} (${r.mode} mode).` : `Root array already attached to ${r.ifname} (${r.mode} mode).`);
      return EXIT_OK;
    }
    case 'detach': {
      const results = detach(req.ifaces!);
      if (argv.json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { attached: false, changed: r.changed }]))));
      else for (const r of results) print(r.changed ? `Detached root array from ${r.ifname}.` : `Root array not attached to interface ${r.ifname}; nothing to detach.`);
      return EXIT_OK;
    }
    case 'load': {
      const r = loadIntoSlot(req.ifname, { slot: req.slot, object: req.object, program: req.program, replace: !!argv.replace, force: !!argv.force });
      if (argv.json) print(toJson({ [r.ifname]: { slot: r.slot, id: r.id, name: r.name, replaced_id: r.replaced || null } }));
      else print(`Loaded ${r.name} (id ${r.id}) into slot ${r.slot} of ${r.ifname}${r.replaced ? `, replacing id ${r.replaced}` : ''}.`);
      return EXIT_OK;
    }
    case 'unload': {
      const removed = unloadSlot(req.ifname, req.slot);
      if (argv.json) print(toJson({ [req.ifname]: { slot: req.slot, unloaded: removed } }));
      else print(removed ? `Emptied slot ${req.slot} of ${req.ifname}.` : `Slot ${req.slot} of ${req.ifname} was already empty.`);
      return EXIT_OK;
    }
    case 'status': {
      const all = status(req.ifaces);
      print(argv.json ? toJson(all) : formatStatus(all));
      if (argv.clear) clearCounters(req.ifaces);
      return EXIT_OK;
    }
    case 'run': {
      // Loaded only here: the config parser and every subprogram's settings
      // rules are start-up cost the other actions need not pay.
      const { runRootService } = await import('../service/root-service.js');
      return runRootService({ config: req.config, dryRun: req.dryRun });
    }
    case 'clear': {
      const cleared = clearCounters(req.ifaces);
      if (argv.json) print(toJson({ cleared }));
      else print(cleared.length ? `Cleared counters on ${cleared.join(', ')}.` : 'No root array to clear.');
      return EXIT_OK;
    }
  }
  return EXIT_OK;
}
