// A real Prometheus for tests: its own config, port and TSDB in a temp dir,
// started from the Debian package's binary (whatever the package's own
// service does), optionally inside a network namespace, and stopped by its
// own pid. promtool, from the same package, lints an exposition.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface PrometheusOptions {
  /** `host:port` of each target, as Prometheus' static_configs take them. */
  targets: string[];
  /** Run inside /run/netns/<netns> (the targets are reached from there). */
  netns?: string;
  job?: string;
}

export interface VectorSample {
  metric: Record<string, string>;
  /** As Prometheus writes it: a float64 in decimal, "NaN", "+Inf". */
  value: string;
}

export interface Prometheus {
  /** http://127.0.0.1:port, Prometheus' own web API. */
  url: string;
  pid: number;
  job: string;
  /** An instant query (`/api/v1/query`), at `time` (unix seconds) or now. */
  query(promql: string, time?: number): Promise<VectorSample[]>;
  /** Wait until `n` more scrapes of the job have been stored. */
  waitForScrapes(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A port nothing listens on now, in this thread's network namespace. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const job = opts.job ?? 'xdplb';
  const dir = mkdtempSync(join(tmpdir(), 'xdplb-prometheus-'));
  // JSON is YAML.
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify({
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: job, static_configs: [{ targets: opts.targets }] }],
  }));
  let proc: ChildProcess | undefined;
  try {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const argv = [
      'prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ];
    // nsenter execs Prometheus: the pid is Prometheus' own.
    const full = opts.netns ? ['nsenter', `--net=/run/netns/${opts.netns}`, ...argv] : argv;
    const p = spawn(full[0], full.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    const log: string[] = [];
    createInterface({ input: p.stderr! }).on('line', (l) => log.push(l));
    let exited: number | null | undefined;
    const gone = new Promise<void>((res) => p.on('exit', (code) => { exited = code; res(); }));
    await new Promise<void>((res, rej) => { p.once('spawn', res); p.once('error', rej); });

    const api = async (path: string) => {
      const r = await fetch(`${url}${path}`);
      const body = (await r.json()) as { status: string; data: { resultType: string; result: unknown }; error?: string };
      if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.error}`);
      return body.data;
    };
    const query = async (promql: string, time?: number): Promise<VectorSample[]> => {
      const at = time === undefined ? '' : `&time=${time}`;
      const data = await api(`/api/v1/query?query=${encodeURIComponent(promql)}${at}`);
      if (data.resultType === 'scalar') return [{ metric: {}, value: (data.result as [number, string])[1] }];
      return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({ metric: s.metric, value: s.value[1] }));
    };
    const scrapes = async () => Number((await query(`count_over_time(up{job="${job}"}[1h])`))[0]?.value ?? 0);

    for (const end = Date.now() + 30_000; ;) {
      if (exited !== undefined) throw new Error(`prometheus exited (${exited}): ${log.slice(-5).join(' | ')}`);
      if (Date.now() > end) throw new Error(`prometheus was not ready in 30 s: ${log.slice(-5).join(' | ')}`);
      try {
        if ((await fetch(`${url}/-/ready`)).status === 200) break;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }

    return {
      url, pid: p.pid!, job, query,
      async waitForScrapes(n, timeoutMs = 30_000) {
        const want = (await scrapes()) + n;
        for (const end = Date.now() + timeoutMs; (await scrapes()) < want;) {
          if (Date.now() > end) throw new Error(`prometheus stored fewer than ${n} scrapes of ${job} in ${timeoutMs} ms`);
          await sleep(100);
        }
      },
      async stop() {
        if (exited === undefined) {
          process.kill(p.pid!, 'SIGTERM');
          const timer = setTimeout(() => exited === undefined && process.kill(p.pid!, 'SIGKILL'), 10_000);
          await gone;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (proc?.pid && proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** `promtool check metrics` on an exposition: its exit code (0: clean, 3:
 *  lint problems, 1: unparsable) and each line it printed. */
export function promtoolCheckMetrics(body: string): { code: number; findings: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, findings: `${r.stdout}${r.stderr}`.split('\n').filter(Boolean) };
}
