// A subprogram's command (xdp-filter, xdp-sampler, xdp-lb, ...), made from
// its descriptor: the actions every subprogram has (attach, detach, status,
// run) written once here, and its own options and actions.
import { optional, required, type ActionSpec, type Args, type OptionSpec, type ToolSpec } from '../command.js';
import { toJson } from '../format.js';
import { parseInterfaceList } from '../net/interface.js';
import { findProgram, placeProgram, removeProgram, withRoot } from '../root/place.js';
import { resolveIface, type Iface } from '../root/pins.js';
import { parseSlot } from '../root/slot.js';
import type { Subprogram } from '../programs/contract.js';
import { DEFAULT_CONFIG } from '../service/defaults.js';
import { statusAction, WATCH_OPTIONS } from './status.js';
import { Undo } from '../undo.js';

const ifaces = (args: Args) => parseInterfaceList(required(args, 'interface'));

function attachAction(sub: Subprogram): ActionSpec<any> {
  const hook = sub.attach;
  return {
    name: 'attach',
    describe: `Put xdp_${sub.name} into a slot of the interfaces' root arrays (or, where it is, apply the options given)`,
    requires: ['interface'],
    accepts: ['slot', ...(hook?.options.map((o) => o.name) ?? [])],
    parse: (a) => ({
      ifaces: ifaces(a),
      slot: optional(a, 'slot') === undefined ? undefined : parseSlot(required(a, 'slot')),
      extra: hook?.parse(a),
    }),
    run(req: { ifaces: string[]; slot?: number; extra: unknown }, ctx) {
      const list: Iface[] = req.ifaces.map(resolveIface);
      // Without --slot: where it is already, else its default slot.
      const slot = req.slot ?? withRoot(list[0], (root) => findProgram(root, sub)?.slot) ?? sub.defaultSlot;
      const { placed, extra } = Undo.run((undo) => {
        const placed = placeProgram(sub, list, slot, undo);
        return { placed, extra: hook?.configure(placed, req.extra) ?? placed.map(() => ({ json: {}, text: '' })) };
      });
      for (const w of hook?.warnings?.(placed) ?? []) ctx.warn(w);
      if (ctx.json) {
        ctx.print(toJson(Object.fromEntries(placed.map((p, i) => [p.iface.name, { slot: p.slot, id: p.id, changed: p.changed, ...extra[i].json }]))));
        return;
      }
      placed.forEach((p, i) => {
        const tail = extra[i].text ? `: ${extra[i].text}` : '';
        ctx.print(p.changed
          ? `Attached ${sub.program} (id ${p.id}) to slot ${p.slot} of ${p.iface.name}${tail}.`
          : `${sub.program} already in slot ${p.slot} of ${p.iface.name}${tail || '; options applied'}.`);
      });
    },
  };
}

function detachAction(sub: Subprogram): ActionSpec<any> {
  return {
    name: 'detach',
    describe: sub.sharedMaps?.length
      ? `Take xdp_${sub.name} out (its state in this network namespace stays for the next attach)`
      : `Take xdp_${sub.name} out and remove its maps`,
    requires: ['interface'],
    parse: (a) => ({ ifaces: ifaces(a) }),
    run(req: { ifaces: string[] }, ctx) {
      const list = req.ifaces.map(resolveIface);
      const results = removeProgram(sub, list);
      sub.afterDetach?.(list);
      if (ctx.json) ctx.print(toJson(Object.fromEntries(results.map((r) => [r.iface.name, { attached: false, changed: r.changed }]))));
      else for (const r of results) ctx.print(r.changed ? `Detached ${sub.program} from ${r.iface.name}.` : `${sub.program} was not attached to ${r.iface.name}; nothing to detach.`);
    },
  };
}

function runAction(sub: Subprogram, command: string): ActionSpec<any> {
  return {
    name: 'run',
    kind: 'command',
    describe: 'Run as a service (systemd Type=notify), bound to xdplb-root: reload on SIGHUP, detach on SIGTERM',
    accepts: ['config'],
    parse: (a) => ({ config: optional(a, 'config') ?? DEFAULT_CONFIG }),
    async run(req: { config: string }) {
      const { runSectionService } = await import('../service/section-service.js');
      return runSectionService(sub, command, req.config);
    },
  };
}

export function subprogramTool(sub: Subprogram): ToolSpec {
  const command = `xdp-${sub.name}`;
  const options: OptionSpec[] = [
    { name: 'interface', alias: 'i', type: 'string', placeholder: 'IFNAME[,IFNAME...]', describe: 'Interface name(s), comma separated' },
    { name: 'slot', alias: 's', type: 'string', placeholder: 'N', describe: `Slot of the root array, 0..7 (default: where it is, else ${sub.defaultSlot})` },
    ...(sub.attach?.options ?? []),
    ...sub.options,
    ...WATCH_OPTIONS,
    { name: 'config', type: 'string', placeholder: 'FILE', describe: `With run: the config file (default ${DEFAULT_CONFIG})` },
  ];
  return {
    name: command,
    summary: sub.summary,
    description: [...sub.description, 'Needs xdp-root --attach on the interface first.'],
    options,
    actions: [attachAction(sub), detachAction(sub), statusAction(sub.status), ...sub.actions, runAction(sub, command)],
  };
}

