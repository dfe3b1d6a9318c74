// `xdp-root run`: the root array as a systemd service (see daemon.ts).
// Attaches (adopting whatever is pinned), applies a changed config on SIGHUP
// without detaching what stays, and detaches everything it attached on
// SIGTERM. A SIGKILL leaves the data plane running for the next start to
// adopt.
import { attach, detach } from '../root/attach.js';
import { status } from '../root/status.js';
import { XdplbError } from '../errors.js';
import { readConfig, type ServiceConfig } from './config.js';
import { SECTION_READERS } from './sections.js';
import { serve } from './daemon.js';
import { chooseInterfaces, interfaceProblems, type Choice, type SystemView, HOST } from './interfaces.js';

export interface RunOptions {
  config: string;
  dryRun?: boolean;
  view?: SystemView;
  log?: (line: string) => void;
}

export interface Plan {
  config: ServiceConfig;
  choice: Choice;
  problems: string[];
}

export function plan(file: string, view: SystemView = HOST): Plan {
  const config = readConfig(file, SECTION_READERS);
  const choice = chooseInterfaces(config.interfaces, view);
  const problems = choice.interfaces.length
    ? choice.interfaces.flatMap((i) => interfaceProblems(i, config.mode, view))
    : ['no interface to attach to: no default route found (list interfaces in the config instead of "auto")'];
  return { config, choice, problems };
}

/** The STATUS= line: what `systemctl status` shows an operator. */
export function statusLine(ifnames: string[]): string {
  const all = status(ifnames);
  return Object.entries(all)
    .map(([name, s]) => {
      if (!s.root_loaded) return `${name}: not attached`;
      const slots = s.subprograms.filter((p) => p.prog_loaded).map((p) => `${p.slot}=${p.name}`);
      return `${name} (${s.mode}): ${slots.length ? `slots ${slots.join(' ')}` : 'all slots empty'}`;
    })
    .join('; ');
}

export function runRootService(opts: RunOptions): Promise<number> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`xdp-root: ${line}\n`));
  const view = opts.view ?? HOST;
  const first = plan(opts.config, view);
  if (opts.dryRun) {
    for (const r of first.choice.reasons) process.stdout.write(`${r}\n`);
    process.stdout.write(`mode: ${first.config.mode}\n`);
    for (const p of first.problems) process.stdout.write(`problem: ${p}\n`);
    process.stdout.write(first.problems.length ? 'would not attach\n' : `would attach to: ${first.choice.interfaces.join(', ')}\n`);
    return Promise.resolve(first.problems.length ? 1 : 0);
  }
  let managed = first.choice.interfaces;
  return serve({
    start() {
      if (first.problems.length) throw new XdplbError(first.problems.join('; '));
      for (const r of attach(managed, first.config.mode, first.config.force)) {
        r.warnings.forEach(log);
        log(`${r.changed ? 'attached to' : 'adopted the root on'} ${r.ifname} (${r.mode} mode)`);
      }
    },
    reload() {
      const next = plan(opts.config, view);
      if (next.problems.length) throw new XdplbError(next.problems.join('; '));
      const keep = next.choice.interfaces;
      const gone = managed.filter((i) => !keep.includes(i));
      const added = keep.filter((i) => !managed.includes(i));
      if (added.length) for (const r of attach(added, next.config.mode, next.config.force)) log(`attached to ${r.ifname} (${r.mode} mode)`);
      if (gone.length) for (const r of detach(gone)) log(`detached from ${r.ifname}`);
      managed = keep;
      log(`reloaded ${opts.config}: ${added.length} attached, ${gone.length} detached, ${keep.length - added.length} unchanged`);
    },
    stop() {
      for (const r of detach(managed)) if (r.changed) log(`detached from ${r.ifname}`);
    },
    status: () => statusLine(managed),
  }, log);
}
