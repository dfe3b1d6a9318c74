// `xdp-root run`: the root array as a systemd service (Type=notify).
// Attaches (adopting whatever is pinned), reports READY/STATUS/WATCHDOG from
// its own pid, applies a changed config on SIGHUP without detaching what
// stays, and detaches everything it attached on SIGTERM. A SIGKILL leaves
// the data plane running for the next start to adopt.
import { sdNotify } from '../libbpf/index.js';
import { attach, detach } from '../root/attach.js';
import { status } from '../root/status.js';
import { XdplbError } from '../errors.js';
import { readConfig, type ServiceConfig } from './config.js';
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
  const config = readConfig(file);
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
  // What stops the start is for the operator to fix (exit 2: systemd does
  // not restart into it); a kernel failure may pass (exit 1: restarted).
  if (first.problems.length) throw new XdplbError(first.problems.join('; '), 2);

  let managed = first.choice.interfaces;
  let attached;
  try {
    attached = attach(managed, first.config.mode, first.config.force);
  } catch (err) {
    if (err instanceof XdplbError) throw new XdplbError(err.message, 2);
    throw err;
  }
  for (const r of attached) {
    r.warnings.forEach(log);
    log(`${r.changed ? 'attached to' : 'adopted the root on'} ${r.ifname} (${r.mode} mode)`);
  }
  const report = () => sdNotify(`STATUS=${statusLine(managed)}`);
  sdNotify('READY=1');
  report();

  const usec = Number(process.env.WATCHDOG_USEC ?? 0);
  const pid = Number(process.env.WATCHDOG_PID ?? process.pid);
  const timers: NodeJS.Timeout[] = [];
  if (usec > 0 && pid === process.pid) {
    timers.push(setInterval(() => sdNotify('WATCHDOG=1'), Math.max(1, Math.floor(usec / 2000))));
  } else {
    timers.push(setInterval(() => {}, 1 << 30)); // keeps the event loop alive
  }

  return new Promise((resolve) => {
    process.on('SIGHUP', () => {
      sdNotify('RELOADING=1');
      try {
        const next = plan(opts.config, view);
        if (next.problems.length) throw new XdplbError(next.problems.join('; '));
        const keep = next.choice.interfaces;
        const gone = managed.filter((i) => !keep.includes(i));
        const added = keep.filter((i) => !managed.includes(i));
        if (added.length) for (const r of attach(added, next.config.mode, next.config.force)) log(`attached to ${r.ifname} (${r.mode} mode)`);
        if (gone.length) for (const r of detach(gone)) log(`detached from ${r.ifname}`);
        managed = keep;
        log(`reloaded ${opts.config}: ${added.length} attached, ${gone.length} detached, ${keep.length - added.length} unchanged`);
      } catch (err) {
        // A bad config changes nothing; the running state stays.
        log(`reload failed, keeping the running configuration: ${(err as Error).message}`);
      }
      sdNotify('READY=1');
      report();
    });
    const stop = (signal: string) => {
      sdNotify('STOPPING=1');
      timers.forEach(clearInterval);
      try {
        for (const r of detach(managed)) if (r.changed) log(`detached from ${r.ifname}`);
        log(`stopped on ${signal}`);
        resolve(0);
      } catch (err) {
        log(`stopping on ${signal}: ${(err as Error).message}`);
        resolve(1);
      }
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
