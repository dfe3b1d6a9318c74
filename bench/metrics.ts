// The cost of a Prometheus scrape as the service serves it: a root attached
// with the balancer in its slot holding 100 VIPs x 100 backends, every
// subprogram's collector and the root's, the whole exposition fetched over
// HTTP from the endpoint in the lab's namespace.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SUBPROGRAMS } from '../src/programs/index.js';
import { MetricsServer, buildInfoCollector, formatListen, rootCollector } from '../src/service/metrics.js';
import { ABI_VERSION } from '../src/version.js';
import { BIN, ok, run, xdpRoot } from '../test/helpers/cli.js';
import { enterNetns, makeLab } from '../test/helpers/netns.js';
import { largeConfig } from './lb.js';
import { summarize, type Summary } from './stats.js';

export const SCRAPE_GOAL_MS = 50;

const execFileP = promisify(execFile);

export interface ScrapeResult {
  runs: number;
  /** Whole scrapes over HTTP, as curl saw them. */
  ms: Summary;
  /** The exposition rendered in process, no HTTP. */
  renderMs: Summary;
  /** CPU time (user + system, every thread) of one render in process: less
   *  moved by other work on the machine than wall time. */
  renderCpuMs: Summary;
  bytes: number;
  series: number;
  /** What the collectors themselves took at the last scrape (ms). */
  collectorsMs: Record<string, number>;
  goal: number;
  pass: boolean;
}

export async function measureScrape(runs: number): Promise<ScrapeResult> {
  const lab = makeLab();
  const dir = mkdtempSync(join(tmpdir(), 'xdplb-bench-metrics-'));
  let leave: (() => void) | undefined;
  let server: MetricsServer | undefined;
  try {
    const cmd = (bin: string, args: string[]) => ok(run(BIN(bin), args, { netns: lab.server }));
    ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'skb'], { netns: lab.server }));
    cmd('xdp-lb', ['--attach', '--interface', lab.serverIf]);
    const config = join(dir, 'lb.json');
    writeFileSync(config, JSON.stringify(largeConfig(1)));
    cmd('xdp-lb', ['--apply', config]);

    // The collectors read the namespace this thread is in, as the service's do.
    leave = enterNetns(lab.server);
    const ifnames = () => [lab.serverIf];
    server = await MetricsServer.start({
      listen: { host: '127.0.0.1', port: 0 },
      collectors: [buildInfoCollector(ABI_VERSION), rootCollector(ifnames), ...SUBPROGRAMS.map((s) => s.metrics(ifnames, { top: 20 }))],
    });
    const url = `http://${formatListen(server.address())}/metrics`;
    // Scraped by curl, a client apart as Prometheus is (this process only
    // serves); curl's own start-up is not in its time_total. One shell
    // runs every curl: each fork of this process would leave its memory
    // copy-on-write, and the serving that follows would pay a page fault
    // per page it writes, which a daemon scraped by Prometheus never does.
    const body = join(dir, 'body');
    const { stdout } = await execFileP('sh', ['-c', 'for i in $(seq 0 "$1"); do curl -s -f -o "$2" -w \'%{time_total}\\n\' "$3" || exit 1; done', 'scrapes', String(runs), body, url]);
    // The first scrape warms up (compiles the collectors' code).
    const times = stdout.trim().split('\n').slice(1).map((t) => Number(t) * 1000);
    const text = readFileSync(body, 'utf8');
    const backends = text.match(/^xdplb_lb_backend_weight\{/gm)?.length ?? 0;
    if (backends !== 100 * 100) throw new Error(`the scrape shows ${backends} backends, expected 10000`);
    // The same, rendered in process: what the daemon's event loop spends.
    const renders: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = process.hrtime.bigint();
      const c = process.cpuUsage();
      await server.scrape();
      const used = process.cpuUsage(c);
      renders.push(Number(process.hrtime.bigint() - t) / 1e6);
      cpu.push((used.user + used.system) / 1e3);
    }
    const collectorsMs = Object.fromEntries(
      [...text.matchAll(/^xdplb_scrape_collector_duration_seconds\{collector="([^"]+)"\} (.*)$/gm)].map((m) => [m[1], Number(m[2]) * 1000]),
    );
    const ms = summarize(times);
    return {
      runs, ms, renderMs: summarize(renders), renderCpuMs: summarize(cpu), bytes: text.length, series: text.split('\n').filter((l) => l && !l.startsWith('#')).length,
      collectorsMs, goal: SCRAPE_GOAL_MS, pass: ms.median <= SCRAPE_GOAL_MS,
    };
  } finally {
    await server?.close();
    leave?.();
    run(BIN('xdp-lb'), ['--detach', '--interface', lab.serverIf], { netns: lab.server });
    run(BIN('xdp-lb'), ['--purge'], { netns: lab.server });
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
