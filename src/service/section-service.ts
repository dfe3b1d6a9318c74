// `xdp-<name> run`: one subprogram as a service bound to xdplb-root. It puts
// the subprogram into its slot on the interfaces the root serves (the same
// choice from the same config), keeps the kernel in line with its section
// on SIGHUP and on every reconciliation, and takes it out on SIGTERM
// (unless a restart follows: then it stays, and the next start adopts it).
import { XdplbError } from '../errors.js';
import { resolveIface, type Iface } from '../root/pins.js';
import { openRoot } from '../root/place.js';
import type { ServiceHandler, Subprogram } from '../programs/contract.js';
import { readConfig } from './config.js';
import { makeLog, serve, type Health } from './daemon.js';
import { chooseInterfaces, HOST } from './interfaces.js';

interface Plan {
  ifnames: string[];
  slot: number;
  settings: unknown;
}

function plan(sub: Subprogram, file: string): Plan {
  const config = readConfig(file);
  const section = config.sections[sub.name];
  if (!section.enabled) {
    throw new XdplbError(`${sub.name} is not enabled in ${file}: set "${sub.name}": { "enabled": true }`);
  }
  const { interfaces } = chooseInterfaces(config.interfaces, HOST);
  if (!interfaces.length) throw new XdplbError(`no interface to run ${sub.name} on: no default route found`);
  return { ifnames: interfaces, slot: section.slot, settings: section.settings };
}

/** The planned interfaces that exist now, and what is wrong with the others. */
function present(ifnames: string[]): { ifaces: Iface[]; missing: string[] } {
  const ifaces: Iface[] = [];
  const missing: string[] = [];
  for (const name of ifnames) {
    try {
      ifaces.push(resolveIface(name));
    } catch {
      missing.push(`${name}: no such interface (waiting for it)`);
    }
  }
  return { ifaces, missing };
}

function rootAttached(iface: Iface): boolean {
  try {
    openRoot(iface).close();
    return true;
  } catch {
    return false;
  }
}

export function runSectionService(sub: Subprogram, command: string, file: string): Promise<number> {
  const log = makeLog(command);
  let current: Plan | null = null;
  let handler: ServiceHandler<unknown>;
  const detach = async (ifaces: Iface[]) => {
    if (!ifaces.length) return;
    await handler.detach(ifaces, log);
    sub.afterDetach?.(ifaces);
  };
  return serve({
    async start() {
      handler = await sub.service();
      const p = plan(sub, file);
      const ifaces = p.ifnames.map(resolveIface);
      for (const line of await handler.apply(ifaces, p.slot, p.settings, log)) log(line, 'notice');
      current = p;
      handler.settled?.(true);
      log(`${sub.name} in slot ${p.slot} on ${p.ifnames.join(', ')}`, 'notice');
    },
    async reload() {
      const next = plan(sub, file);
      const before = current!;
      const { ifaces, missing } = present(next.ifnames);
      // Moving to another slot takes it out first: a slot holds one program.
      const gone = next.slot === before.slot ? before.ifnames.filter((i) => !next.ifnames.includes(i)) : before.ifnames;
      const lines: string[] = [];
      if (gone.length) {
        await detach(present(gone).ifaces);
        lines.push(`${sub.name}: left ${gone.join(', ')}`);
      }
      lines.push(...await handler.apply(ifaces, next.slot, next.settings, log));
      current = next;
      handler.settled?.(!missing.length);
      return lines;
    },
    async stop(leave) {
      await handler?.stop?.(leave);
      if (!current || leave) return;
      await detach(present(current.ifnames).ifaces);
    },
    status() {
      const p = current;
      if (!p) return 'starting';
      return handler.status(present(p.ifnames).ifaces.filter(rootAttached));
    },
    watch(report) {
      handler.watch?.(report);
    },
    async reconcile(): Promise<Health> {
      const p = current!;
      const { ifaces, missing } = present(p.ifnames);
      const problems = [...missing];
      // The root array is xdplb-root's to repair; the slot is ours.
      const rooted = ifaces.filter((i) => {
        if (rootAttached(i)) return true;
        problems.push(`${i.name}: no root array (xdplb-root attaches it)`);
        return false;
      });
      const settle = (health: Health): Health => {
        handler.settled?.(!health.problems.length);
        return { ...health, problems: [...health.problems, ...handler.problems?.() ?? []] };
      };
      const wrong = handler.check(rooted, p.slot, p.settings);
      if (!wrong.length) return settle({ problems, failed: false });
      log(`repairing: ${wrong.join('; ')}`, 'warning');
      try {
        for (const line of await handler.apply(rooted, p.slot, p.settings, log)) log(line, 'notice');
      } catch (err) {
        return settle({ problems: [...problems, ...wrong, `repair failed: ${(err as Error).message}`], failed: true });
      }
      return settle({ problems: [...problems, ...handler.check(rooted, p.slot, p.settings)], failed: false });
    },
  }, log);
}
