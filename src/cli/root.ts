// xdp-root: attach the root array to interfaces, fill and empty its slots,
// show what every slot decided.
import { basename } from 'node:path';
import { flag, optional, required, type ActionSpec, type Args, type OptionSpec, type ToolSpec } from '../command.js';
import { UsageError, XdplbError } from '../errors.js';
import { formatTime, table, toJson } from '../format.js';
import { parseInterfaceList } from '../net/interface.js';
import { formatPps, type RateTree } from '../rates.js';
import { attach, detach, parseMode } from '../root/attach.js';
import { loadIntoSlot, unloadSlot } from '../root/place.js';
import { resolveIface } from '../root/pins.js';
import { parseSlot } from '../root/slot.js';
import { clearCounters, status, type InterfaceStatus } from '../root/status.js';
import { ACTIONS as COUNTED } from '../root/stats.js';
import { DEFAULT_CONFIG } from '../service/defaults.js';
import { statusAction, WATCH_OPTIONS } from './status.js';

export const COMMAND = 'xdp-root';

const OPTIONS: OptionSpec[] = [
  { name: 'interface', alias: 'i', type: 'string', placeholder: 'IFNAME[,IFNAME...]', describe: 'Interface name(s), comma separated' },
  { name: 'mode', alias: 'm', type: 'string', placeholder: 'auto|native|skb', describe: 'XDP mode: native, skb (generic) or auto (native, else skb; the default)' },
  { name: 'force', type: 'boolean', describe: 'Attach over a foreign XDP program / load a program that ignores the slot protocol' },
  { name: 'slot', alias: 's', type: 'string', placeholder: 'N', describe: 'Slot number, 0..7' },
  { name: 'object', alias: 'o', type: 'string', placeholder: 'FILE', describe: 'BPF object file (ELF)' },
  { name: 'program', alias: 'p', type: 'string', placeholder: 'NAME', describe: 'Program name in the object' },
  { name: 'replace', type: 'boolean', describe: 'With --load: replace the program already in the slot (one atomic update)' },
  { name: 'config', alias: 'c', type: 'string', placeholder: 'FILE', describe: `With run: the config file (default ${DEFAULT_CONFIG})` },
  { name: 'dry-run', type: 'boolean', describe: 'With run: print which interfaces would be attached and why, change nothing' },
  ...WATCH_OPTIONS,
];

const ifaces = (args: Args) => parseInterfaceList(required(args, 'interface'));

function single(args: Args, action: string): string {
  const list = ifaces(args);
  if (list.length !== 1) throw new UsageError(`--${action} takes one interface, got '${list.join(',')}'`);
  return list[0];
}

/** A program xdplb ships has pinned maps that only its own tool reuses:
 *  loaded by --load it would start with fresh, empty ones. The registry is
 *  imported here only: the other actions of xdp-root start without it. */
async function refuseBuiltIn(object: string, program: string, ifname: string): Promise<void> {
  const { SUBPROGRAMS } = await import('../programs/index.js');
  const sub = SUBPROGRAMS.find((s) => s.program === program && basename(object) === s.object);
  if (sub) {
    throw new XdplbError(
      `${program} is xdplb's ${sub.name}: place it with xdp-${sub.name} --attach --interface ${ifname} [--slot N], which keeps its ` +
        'pinned maps (xdp-root --load would give it fresh, empty ones)',
    );
  }
}

const COLUMNS = ['SLOT', 'ID', 'NAME', 'LOAD TIME', ...COUNTED];

export function formatStatus(all: Record<string, InterfaceStatus>, rates?: RateTree): string {
  const out: string[] = [];
  const r = (rates ?? {}) as Record<string, any>;
  const cell = (n: bigint, rate: number | null | undefined) => (rates ? `${n} (${formatPps(rate ?? null)})` : n);
  for (const [ifname, s] of Object.entries(all)) {
    if (!s.root_loaded) {
      out.push(
        s.gone
          ? `Root array of ${ifname} (ifindex ${s.ifindex}) is pinned but its device is gone: run xdp-root --detach --interface ${ifname.replace(/@if\d+$/, '')} to remove the pins.`
          : `Root array not attached to interface ${ifname}.`,
      );
      continue;
    }
    const ri = r[ifname] ?? {};
    const rows = s.subprograms.map((p, i) => {
      const rp = ri.subprograms?.[i]?.statistics ?? {};
      return p.prog_loaded
        ? [p.slot, p.id!, p.name!, formatTime(p.load_time!), ...COUNTED.map((a) => cell(p.statistics[a], rp[a]))]
        : [p.slot, '-', '-', '-', ...COUNTED.map(() => '-')];
    });
    rows.push(['root', s.root_id, 'xdp_root', '(all slots empty)', ...COUNTED.map((a) => cell(s.root.statistics[a], ri.root?.statistics?.[a]))]);
    rows.push(['total', '', '', '(final verdicts)', ...COUNTED.map((a) => cell(s.statistics[a], ri.statistics?.[a]))]);
    out.push(`Interface ${ifname} status (${s.mode} mode):`, table(COLUMNS, rows));
    if (s.slot_mask_mismatch) out.push(formatMismatch(ifname, s.slot_mask_mismatch));
  }
  if (!out.length) out.push('No root array attached to any interface in this network namespace.');
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

const ACTIONS: Array<ActionSpec<any>> = [
  {
    name: 'attach',
    describe: 'Attach the root array to the interfaces (idempotent; adopts a root already there)',
    requires: ['interface'],
    accepts: ['mode', 'force'],
    parse: (a) => ({ ifaces: ifaces(a), mode: parseMode(optional(a, 'mode') ?? 'auto'), force: flag(a, 'force') }),
    run(req: { ifaces: string[]; mode: ReturnType<typeof parseMode>; force: boolean }, ctx) {
      const results = attach(req.ifaces, req.mode, req.force);
      for (const r of results) for (const w of r.warnings) ctx.warn(w);
      if (ctx.json) ctx.print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { attached: true, mode: r.mode, changed: r.changed }]))));
      else for (const r of results) ctx.print(r.changed ? `Attached root array to ${r.ifname} (${r.mode} mode).` : `Root array already attached to ${r.ifname} (${r.mode} mode).`);
    },
  },
  {
    name: 'detach',
    describe: 'Detach the root array and remove its pins (also the stale pins of a deleted device of that name)',
    requires: ['interface'],
    parse: (a) => ({ ifaces: ifaces(a) }),
    run(req: { ifaces: string[] }, ctx) {
      const results = detach(req.ifaces);
      if (ctx.json) ctx.print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { attached: false, changed: r.changed, stale_removed: r.stale }]))));
      else {
        for (const r of results) {
          if (r.stale) ctx.print(`Removed the stale pins of ${r.stale} deleted device(s) named ${r.ifname}.`);
          if (r.changed) ctx.print(`Detached root array from ${r.ifname}.`);
          else if (!r.stale) ctx.print(`Root array not attached to interface ${r.ifname}; nothing to detach.`);
        }
      }
    },
  },
  {
    name: 'load',
    describe: 'Load a program into a slot (one atomic update)',
    requires: ['interface', 'slot', 'object', 'program'],
    accepts: ['replace', 'force'],
    parse(a) {
      return { ifname: single(a, 'load'), slot: parseSlot(required(a, 'slot')), object: required(a, 'object'), program: required(a, 'program'), replace: flag(a, 'replace'), force: flag(a, 'force') };
    },
    async run(req: { ifname: string; slot: number; object: string; program: string; replace: boolean; force: boolean }, ctx) {
      await refuseBuiltIn(req.object, req.program, req.ifname);
      const r = loadIntoSlot(resolveIface(req.ifname), req);
      if (ctx.json) ctx.print(toJson({ [r.ifname]: { slot: r.slot, id: r.id, name: r.name, replaced_id: r.replaced || null } }));
      else ctx.print(`Loaded ${r.name} (id ${r.id}) into slot ${r.slot} of ${r.ifname}${r.replaced ? `, replacing id ${r.replaced}` : ''}.`);
    },
  },
  {
    name: 'unload',
    describe: 'Empty a slot',
    requires: ['interface', 'slot'],
    parse: (a) => ({ ifname: single(a, 'unload'), slot: parseSlot(required(a, 'slot')) }),
    run(req: { ifname: string; slot: number }, ctx) {
      const removed = unloadSlot(resolveIface(req.ifname), req.slot);
      if (ctx.json) ctx.print(toJson({ [req.ifname]: { slot: req.slot, unloaded: removed } }));
      else ctx.print(removed ? `Emptied slot ${req.slot} of ${req.ifname}.` : `Slot ${req.slot} of ${req.ifname} was already empty.`);
    },
  },
  (() => {
    const base = statusAction({ read: status, text: formatStatus }, {
      describe: 'Show slots and per-slot XDP action counters (--clear: zero them after printing)',
      accepts: ['interface', 'watch', 'interval', 'clear'],
    });
    return {
      ...base,
      parse: (a: Args) => ({ ...base.parse(a), clear: flag(a, 'clear') }),
      async run(req: ReturnType<typeof base.parse> & { clear: boolean }, ctx) {
        const code = await base.run(req, ctx);
        if (req.clear) clearCounters(req.ifaces);
        return code;
      },
    } as ActionSpec<any>;
  })(),
  {
    name: 'clear',
    describe: 'Zero the counters',
    accepts: ['interface'],
    parse: (a) => ({ ifaces: optional(a, 'interface') === undefined ? undefined : ifaces(a) }),
    run(req: { ifaces?: string[] }, ctx) {
      const cleared = clearCounters(req.ifaces);
      if (ctx.json) ctx.print(toJson({ cleared }));
      else ctx.print(cleared.length ? `Cleared counters on ${cleared.join(', ')}.` : 'No root array to clear.');
    },
  },
  {
    name: 'run',
    kind: 'command',
    describe: 'Run as a service (systemd Type=notify): attach per the config, reload on SIGHUP, detach on SIGTERM',
    accepts: ['config', 'dry-run'],
    parse: (a) => ({ config: optional(a, 'config') ?? DEFAULT_CONFIG, dryRun: flag(a, 'dry-run') }),
    async run(req: { config: string; dryRun: boolean }) {
      // Loaded only here: the service is start-up cost the other actions need not pay.
      const { runRootService } = await import('../service/root-service.js');
      return runRootService({ config: req.config, dryRun: req.dryRun });
    },
  },
];

export const ROOT_TOOL: ToolSpec = {
  name: COMMAND,
  summary: 'xdplb root array: attach XDP dispatchers and fill their slots',
  description: [
    'The root XDP program tail-calls slots 0..7 in order; each slot holds a program that follows the slot protocol. ' +
      'State lives in /sys/fs/bpf/xdplb, per network namespace and interface.',
  ],
  options: OPTIONS,
  actions: ACTIONS,
};
