// `xdp-filter run`, `xdp-sampler run`, `xdp-lb run`: one subprogram as a
// service bound to xdplb-root. It puts the subprogram into its slot on the
// interfaces the root serves (the same choice from the same config), keeps
// the kernel in line with its section on SIGHUP, and takes it out on SIGTERM.
import { XdplbError } from '../errors.js';
import { readConfig, type SectionName } from './config.js';
import { serve, type Log } from './daemon.js';
import { chooseInterfaces, HOST } from './interfaces.js';
import { SECTION_READERS } from './sections.js';

export interface SectionHandler<T> {
  section: SectionName;
  /** Put the subprogram into `slot` on each interface, with these settings;
   *  idempotent, and what is already right is left alone. */
  apply(ifnames: string[], slot: number, settings: T, log: Log): void;
  /** Take it out of each interface. */
  detach(ifnames: string[]): void;
  /** The STATUS= line. */
  status(ifnames: string[]): string;
}

interface Plan<T> {
  ifnames: string[];
  slot: number;
  settings: T;
}

function plan<T>(h: SectionHandler<T>, file: string): Plan<T> {
  const config = readConfig(file, SECTION_READERS);
  const section = config.sections[h.section];
  if (!section.enabled) {
    throw new XdplbError(`${h.section} is not enabled in ${file}: set "${h.section}": { "enabled": true }`);
  }
  const { interfaces } = chooseInterfaces(config.interfaces, HOST);
  if (!interfaces.length) throw new XdplbError(`no interface to run ${h.section} on: no default route found`);
  return { ifnames: interfaces, slot: section.slot, settings: section.settings as T };
}

export function runSectionService<T>(h: SectionHandler<T>, command: string, file: string): Promise<number> {
  const log: Log = (line) => process.stderr.write(`${command}: ${line}\n`);
  let current: Plan<T> | null = null;
  return serve({
    start() {
      const p = plan(h, file);
      h.apply(p.ifnames, p.slot, p.settings, log);
      current = p;
      log(`${h.section} in slot ${p.slot} on ${p.ifnames.join(', ')}`);
    },
    reload() {
      const next = plan(h, file);
      const before = current!;
      // Moving to another slot takes it out first: a slot holds one program.
      const gone = next.slot === before.slot ? before.ifnames.filter((i) => !next.ifnames.includes(i)) : before.ifnames;
      if (gone.length) h.detach(gone);
      h.apply(next.ifnames, next.slot, next.settings, log);
      current = next;
      log(`reloaded ${file}: ${h.section} in slot ${next.slot} on ${next.ifnames.join(', ')}`);
    },
    stop() {
      if (current) h.detach(current.ifnames);
    },
    status: () => h.status(current?.ifnames ?? []),
  }, log);
}
