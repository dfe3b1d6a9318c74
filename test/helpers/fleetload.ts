// Clients of a fleet lab: short requests (a new connection each, Node's
// http client) and long-lived connections (HTTP/1.1 keep-alive, one request
// every `everyMs` on each), run in the client's namespace as their own
// processes, killed by their own pids.
import { spawn, type ChildProcess } from 'node:child_process';
import { loadScript, type RequestRecord } from './lblab.js';

export type { RequestRecord };

function runNode(ns: string, script: string): { proc: ChildProcess; out: Promise<string> } {
  const proc = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const done = new Promise<string>((resolve, reject) =>
    proc.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`client exited ${code}: ${err.trim()}`)))));
  return { proc, out: done };
}

/** Short requests from `locals` in turn: `count` of them, or for `ms`. */
export function requests(ns: string, opts: { url: string; locals: string[]; count?: number; ms?: number; concurrency: number }): Promise<RequestRecord[]> {
  return runNode(ns, loadScript(opts)).out.then((o) => JSON.parse(o) as RequestRecord[]);
}

export interface HeldResult {
  connections: number;
  /** Connections that failed or closed, with why. */
  broken: Array<{ i: number; error: string; at: number }>;
  exchanges: number;
  /** Per connection: every backend that answered it (one, unless it moved). */
  backends: string[][];
  /** The longest wait for an answer on any connection, ms. */
  maxWaitMs: number;
}

const HOLD = `
const net = require('node:net');
const o = JSON.parse(process.argv[1]);
const conns = [];
let stop = false;
let opened = 0;
function open(i) {
  const c = { i, backends: new Set(), exchanges: 0, broken: null, buf: '', maxWait: 0 };
  conns.push(c);
  const s = net.connect({ host: o.host, port: o.port, localAddress: o.locals[i % o.locals.length] });
  c.s = s;
  s.setEncoding('latin1');
  const fail = (e) => { if (!c.broken && !stop) c.broken = { i, error: e, at: Date.now() }; clearTimeout(c.timer); };
  s.on('error', (e) => fail(e.code || e.message));
  s.on('close', () => fail('closed'));
  const ask = () => {
    if (stop || c.broken) return;
    c.sent = Date.now();
    s.write('GET /who HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n');
    c.timer = setTimeout(() => fail('no answer in ' + o.timeoutMs + ' ms'), o.timeoutMs);
  };
  s.on('connect', () => { opened++; ask(); });
  s.on('data', (d) => {
    c.buf += d;
    for (;;) {
      const end = c.buf.indexOf('\\r\\n\\r\\n');
      if (end < 0) return;
      const len = Number(/content-length: *(\\d+)/i.exec(c.buf.slice(0, end))?.[1] ?? 0);
      if (c.buf.length < end + 4 + len) return;
      c.backends.add(c.buf.slice(end + 4, end + 4 + len));
      c.buf = c.buf.slice(end + 4 + len);
      clearTimeout(c.timer);
      c.maxWait = Math.max(c.maxWait, Date.now() - c.sent);
      c.exchanges++;
      setTimeout(ask, o.everyMs);
    }
  });
}
for (let i = 0; i < o.n; i++) open(i);
const ready = setInterval(() => { if (opened === o.n) { clearInterval(ready); process.stdout.write('READY\\n'); } }, 20);
process.on('SIGTERM', () => {
  stop = true;
  for (const c of conns) { clearTimeout(c.timer); c.s.destroy(); }
  process.stdout.write(JSON.stringify({
    connections: opened,
    broken: conns.filter((c) => c.broken).map((c) => c.broken),
    exchanges: conns.reduce((n, c) => n + c.exchanges, 0),
    backends: conns.map((c) => [...c.backends]),
    maxWaitMs: Math.max(...conns.map((c) => c.maxWait)),
  }) + '\\n');
  process.exit(0);
});
`;

/** `n` keep-alive connections to `host:port`, a request on each every
 *  `everyMs`; resolves once all are open; stop() ends them and reports. */
export async function holdConnections(ns: string, opts: { host: string; port: number; locals: string[]; n: number; everyMs: number; timeoutMs: number }) {
  const proc = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '-e', HOLD, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  const end = Date.now() + 20_000;
  while (!out.includes('READY\n')) {
    if (proc.exitCode !== null) throw new Error(`connections: exited ${proc.exitCode}: ${err.trim()}`);
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`connections: not all ${opts.n} open in 20 s: ${err.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    async stop(): Promise<HeldResult> {
      proc.kill('SIGTERM');
      await exited;
      return JSON.parse(out.slice(out.indexOf('\n') + 1)) as HeldResult;
    },
    kill(): void {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}
