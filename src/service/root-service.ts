// `xdp-root run`: the root array as a systemd service (see daemon.ts).
// Attaches (adopting whatever is pinned), applies a changed config on SIGHUP
// without detaching what stays, gives an interface that comes back its root
// again, and detaches everything it attached on SIGTERM, unless a restart
// follows. A SIGKILL leaves the data plane running for the next start to
// adopt.
import { attach, detach } from '../root/attach.js';
import { findPinned } from '../root/pins.js';
import { status } from '../root/status.js';
import { XdplbError } from '../errors.js';
import { writeOut } from '../sys/stdout.js';
import { readConfig, type ServiceConfig } from './config.js';
import { makeLog, serve, type Health } from './daemon.js';
import { MetricsServer, buildInfoCollector, formatListen, rootCollector } from './metrics.js';
import { SUBPROGRAMS } from '../programs/index.js';
import { ABI_VERSION } from '../version.js';
import { chooseInterfaces, interfaceProblems, type Choice, type SystemView, HOST } from './interfaces.js';

export interface RunOptions {
  config: string;
  dryRun?: boolean;
  view?: SystemView;
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
  return ifnames
    .map((name) => {
      let s;
      try {
        s = status([name])[name];
      } catch {
        return `${name}: no such interface`;
      }
      if (!s?.root_loaded) return `${name}: not attached`;
      const slots = s.subprograms.filter((p) => p.prog_loaded).map((p) => `${p.slot}=${p.name}`);
      return `${name} (${s.mode}): ${slots.length ? `slots ${slots.join(' ')}` : 'all slots empty'}`;
    })
    .join('; ');
}

export async function runRootService(opts: RunOptions): Promise<number> {
  const log = makeLog('xdp-root');
  const view = opts.view ?? HOST;
  const first = plan(opts.config, view);
  if (opts.dryRun) {
    for (const r of first.choice.reasons) writeOut(`${r}\n`);
    writeOut(`mode: ${first.config.mode}\n`);
    for (const p of first.problems) writeOut(`problem: ${p}\n`);
    writeOut(first.problems.length ? 'would not attach\n' : `would attach to: ${first.choice.interfaces.join(', ')}\n`);
    return first.problems.length ? 1 : 0;
  }
  let managed = first.choice.interfaces;
  let config = first.config;
  let metrics: MetricsServer | null = null;
  const collectors = (top: number) => [
    buildInfoCollector(ABI_VERSION),
    rootCollector(() => managed),
    ...SUBPROGRAMS.map((sub) => sub.metrics(() => managed, { top })),
  ];
  /** Serve metrics as `config` says: started, moved or stopped. */
  const serveMetrics = async (next: ServiceConfig, lines: string[]) => {
    const want = next.metrics;
    const same = metrics && want ? formatListen(metrics.listening) === formatListen(want.listen) && metrics.top === want.top : !metrics && !want;
    if (same) return;
    // A new address is taken before the old one is let go: a bad one leaves
    // the running endpoint as it was.
    const started = want ? await MetricsServer.start({ listen: want.listen, collectors: collectors(want.top), top: want.top, log: (l) => log(l, 'warning') }) : null;
    await metrics?.close();
    metrics = started;
    lines.push(want ? `serving metrics on http://${formatListen(want.listen)}/metrics` : 'no longer serving metrics');
  };
  return serve({
    async start() {
      if (first.problems.length) throw new XdplbError(first.problems.join('; '));
      const lines: string[] = [];
      // Before the kernel is touched: a busy port fails the start cleanly.
      await serveMetrics(config, lines);
      lines.forEach((l) => log(l, 'notice'));
      for (const r of attach(managed, config.mode, config.force)) {
        r.warnings.forEach((w) => log(w, 'warning'));
        log(`${r.changed ? 'attached to' : 'adopted the root on'} ${r.ifname} (${r.mode} mode)`, 'notice');
      }
    },
    async reload() {
      const next = plan(opts.config, view);
      if (next.problems.length) throw new XdplbError(next.problems.join('; '));
      const lines: string[] = [];
      await serveMetrics(next.config, lines);
      const keep = next.choice.interfaces;
      const gone = managed.filter((i) => !keep.includes(i));
      const added = keep.filter((i) => !managed.includes(i));
      if (added.length) for (const r of attach(added, next.config.mode, next.config.force)) lines.push(`attached to ${r.ifname} (${r.mode} mode)`);
      if (gone.length) for (const r of detach(gone)) lines.push(`detached from ${r.ifname}`);
      managed = keep;
      config = next.config;
      return lines;
    },
    async stop(leave) {
      await metrics?.close();
      if (leave) return;
      for (const r of detach(managed.filter((n) => findPinned(n).live || findPinned(n).gone.length))) {
        if (r.changed) log(`detached from ${r.ifname}`, 'notice');
      }
    },
    status: () => statusLine(managed),
    reconcile(): Health {
      const problems: string[] = [];
      let failed = false;
      for (const name of managed) {
        const pinned = findPinned(name);
        if (pinned.gone.length) {
          detach([name]);
          log(`${name}: removed the pins of a deleted device of that name`, 'notice');
        }
        let s;
        try {
          s = status([name])[name];
        } catch {
          problems.push(`${name}: no such interface (waiting for it)`);
          continue;
        }
        if (s.root_loaded) continue;
        try {
          for (const r of attach([name], config.mode, config.force)) {
            r.warnings.forEach((w) => log(w, 'warning'));
            log(`${name}: the root array was missing; attached again (${r.mode} mode)`, 'warning');
          }
        } catch (err) {
          problems.push(`${name}: cannot attach the root array: ${(err as Error).message}`);
          failed = true;
        }
      }
      return { problems, failed };
    },
  }, log);
}
