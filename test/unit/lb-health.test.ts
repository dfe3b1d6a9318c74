// The balancer's health checks against real servers on loopback addresses
// (127.0.0.x, ports the kernel picks): what one check sends and concludes,
// rise and fall counted exactly, spread, the bound on checks in flight,
// reconfiguration without flaps, a stop that lets the process exit; and the
// config the kernel gets from the health states.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig, type HealthSpec } from '../../src/programs/lb/config.js';
import {
  HealthChecker, checkBackend, firstCheckDelay, healthStatus, healthTargets, healthText, kernelConfig, targetKey,
  type CheckResult, type HealthEvent, type HealthState, type HealthTarget,
} from '../../src/programs/lb/health.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server on `host`, port from the kernel unless given; closed after the test. */
async function listen(server: net.Server, host: string, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  cleanups.push(() => new Promise((r) => server.close(r)));
  return (server.address() as net.AddressInfo).port;
}

/** Stop a server and every connection it holds (closeAllConnections for HTTP). */
function shut(server: net.Server): Promise<void> {
  return new Promise((r) => {
    server.close(() => r());
    (server as http.Server).closeAllConnections?.();
  });
}

/** Accepts, reads and never answers (reading lets it see the client close). */
const sink = (s: net.Socket) => {
  s.resume();
  s.on('error', () => {});
};

const TCP: HealthSpec = { type: 'tcp', port: 0, interval_ms: 50, timeout_ms: 40, rise: 2, fall: 3 };
const HTTP: HealthSpec = { ...TCP, type: 'http', path: '/', expect_status: 200 };
const target = (key: string, address: string, spec: HealthSpec): HealthTarget => ({ key, backend: `${address}:${spec.port}`, address, spec });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A checker whose results and events are written into one history:
 *  `+` a success, `-` a failure, `U` up, `D` down. */
function watched(targets: HealthTarget[], concurrency?: number) {
  const history: string[] = [];
  const events: HealthEvent[] = [];
  const results: Array<{ key: string; at: number; result: CheckResult }> = [];
  const t0 = performance.now();
  const checker = new HealthChecker(targets, (e) => {
    events.push(e);
    history.push(e.to === 'up' ? 'U' : 'D');
  }, {
    concurrency,
    onCheck: (key, result) => {
      results.push({ key, at: performance.now() - t0, result });
      history.push(result.ok ? '+' : '-');
    },
  });
  cleanups.push(() => checker.stop());
  return { checker, history, events, results, text: () => history.join('') };
}

describe('one check', () => {
  it('TCP: a connect is a success; a refused one names the error', async () => {
    const server = net.createServer(sink);
    const port = await listen(server, '127.0.0.2');
    expect(await checkBackend('127.0.0.2', { ...TCP, port })).toEqual({ ok: true });
    await shut(server);
    expect(await checkBackend('127.0.0.2', { ...TCP, port })).toEqual({ ok: false, error: 'connect ECONNREFUSED' });
  });

  it('HTTP: sends GET with Host and Connection: close, and reads the status line', async () => {
    let request = '';
    const server = net.createServer((s) => {
      s.on('data', (d) => {
        request += d;
        if (request.includes('\r\n\r\n')) s.end('HTTP/1.1 204 No Content\r\n\r\n');
      });
    });
    const port = await listen(server, '127.0.0.2');
    expect(await checkBackend('127.0.0.2', { ...HTTP, port, path: '/healthz?full=1', expect_status: [200, 204] })).toEqual({ ok: true });
    const [line, ...headers] = request.trimEnd().split('\r\n');
    expect(line).toBe('GET /healthz?full=1 HTTP/1.1');
    expect(headers.map((h) => h.toLowerCase()).sort()).toEqual([`connection: close`, `host: 127.0.0.2:${port}`, 'user-agent: xdplb-health']);
  });

  it('HTTP over IPv6: the Host header has the address in brackets', async () => {
    let host: string | undefined;
    const server = http.createServer((req, res) => {
      host = req.headers.host;
      res.end('ok');
    });
    const port = await listen(server, '::1');
    expect(await checkBackend('::1', { ...HTTP, port })).toEqual({ ok: true });
    expect(host).toBe(`[::1]:${port}`);
  });

  it('HTTP: a status outside the expected ones fails with it; a class matches its hundred', async () => {
    let status = 503;
    const server = http.createServer((_req, res) => {
      res.statusCode = status;
      res.end('x'.repeat(1000));
    });
    const port = await listen(server, '127.0.0.2');
    expect(await checkBackend('127.0.0.2', { ...HTTP, port })).toEqual({ ok: false, error: 'HTTP 503' });
    expect(await checkBackend('127.0.0.2', { ...HTTP, port, expect_status: '5xx' })).toEqual({ ok: true });
    status = 299;
    expect(await checkBackend('127.0.0.2', { ...HTTP, port, expect_status: '2xx' })).toEqual({ ok: true });
    expect(await checkBackend('127.0.0.2', { ...HTTP, port, expect_status: [200, 204] })).toEqual({ ok: false, error: 'HTTP 299' });
  });

  it('HTTP: a server that accepts and never answers is a timeout; one that hangs up is named', async () => {
    const silent = net.createServer(sink);
    const port = await listen(silent, '127.0.0.2');
    const t = performance.now();
    expect(await checkBackend('127.0.0.2', { ...HTTP, port, timeout_ms: 100, interval_ms: 200 })).toEqual({ ok: false, error: 'timeout after 100 ms' });
    expect(performance.now() - t).toBeGreaterThanOrEqual(99);
    expect(performance.now() - t).toBeLessThan(300);
    const rude = net.createServer((s) => s.once('data', () => s.destroy()));
    const port2 = await listen(rude, '127.0.0.2');
    expect(await checkBackend('127.0.0.2', { ...HTTP, port: port2 })).toEqual({ ok: false, error: 'closed before a response' });
  });

  it('HTTP: reads a large body no further than its bound, and is done at once', async () => {
    let written = 0;
    const server = http.createServer((_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 97);
      // Unending: only the bound can end the check in time.
      const more = () => {
        do written += chunk.length;
        while (res.write(chunk));
      };
      res.on('drain', more);
      more();
    });
    const port = await listen(server, '127.0.0.2');
    const t = performance.now();
    expect(await checkBackend('127.0.0.2', { ...HTTP, port, timeout_ms: 1000, interval_ms: 2000 })).toEqual({ ok: true });
    expect(performance.now() - t).toBeLessThan(500);
    (server as http.Server).closeAllConnections();
    expect(written).toBeGreaterThan(0);
  });
});

describe('HealthChecker', () => {
  it('is up after exactly rise successes, down after exactly fall failures, up again after rise (TCP)', async () => {
    const server = net.createServer(sink);
    const port = await listen(server, '127.0.0.3');
    const w = watched([target('vip 127.0.0.3', '127.0.0.3', { ...TCP, port })]);
    expect(w.checker.states().get('vip 127.0.0.3')).toMatchObject({ health: 'unchecked', last_error: null, successes: 0, failures: 0 });
    await until('up', () => w.events.length === 1);
    await until('another success', () => w.text().endsWith('U+'));
    await shut(server);
    await until('down', () => w.events.length === 2);
    const again = net.createServer(sink);
    await listen(again, '127.0.0.3', port);
    await until('up again', () => w.events.length === 3);
    expect(w.text()).toMatch(/^\+\+U\++---D-*\+\+U\+*$/);
    expect(w.events.map((e) => [e.from, e.to, e.line])).toEqual([
      ['unchecked', 'up', `127.0.0.3:${port} up (2 of 2)`],
      ['up', 'down', `127.0.0.3:${port} down: connect ECONNREFUSED (3 of 3)`],
      ['down', 'up', `127.0.0.3:${port} up (2 of 2)`],
    ]);
    const last = w.events[2].state;
    expect(last).toMatchObject({ health: 'up', last_error: 'connect ECONNREFUSED', successes: 2, failures: 0 });
    expect(last.since.getTime()).toBeGreaterThan(w.events[1].state.since.getTime());
  });

  it('goes down from unchecked on a status mismatch, and up when the status is right again (HTTP)', async () => {
    let status = 500;
    const server = http.createServer((_req, res) => {
      res.statusCode = status;
      res.end();
    });
    const port = await listen(server, '127.0.0.3');
    const w = watched([target('k', '127.0.0.3', { ...HTTP, port, fall: 2, rise: 3 })]);
    await until('down', () => w.events.length === 1);
    status = 200;
    await until('up', () => w.events.length === 2);
    expect(w.text()).toMatch(/^--D-*\+\+\+U\+*$/);
    expect(w.events.map((e) => e.line)).toEqual([`127.0.0.3:${port} down: HTTP 500 (2 of 2)`, `127.0.0.3:${port} up (3 of 3)`]);
  });

  it('counts a check that times out as a failure', async () => {
    const silent = net.createServer(sink);
    const port = await listen(silent, '127.0.0.3');
    const w = watched([target('k', '127.0.0.3', { ...HTTP, port, fall: 2 })]);
    await until('down', () => w.events.length === 1);
    expect(w.events[0].line).toBe(`127.0.0.3:${port} down: timeout after 40 ms (2 of 2)`);
  });

  it('never has more checks in flight than its bound, and reaches it', async () => {
    let open = 0;
    let most = 0;
    const server = http.createServer((_req, res) => {
      most = Math.max(most, ++open);
      setTimeout(() => {
        open--;
        res.end();
      }, 30);
    });
    const port = await listen(server, '127.0.0.4');
    const keys = Array.from({ length: 12 }, (_, i) => `vip${i} 127.0.0.4`);
    const w = watched(keys.map((k) => target(k, '127.0.0.4', { ...HTTP, port, interval_ms: 100, timeout_ms: 90 })), 3);
    await until('every target up', () => keys.every((k) => w.checker.states().get(k)?.health === 'up'));
    await w.checker.stop();
    expect(most).toBe(3);
    // Waiting for a turn is not a failure: the timeout starts with the check.
    expect(w.results.filter((r) => !r.result.ok)).toEqual([]);
  });

  it('spreads first checks over the interval, each at the offset its key gives', async () => {
    const server = net.createServer(sink);
    const port = await listen(server, '127.0.0.5');
    const keys = Array.from({ length: 20 }, (_, i) => `tcp:10.0.0.10:80 10.0.${i}.2:80`);
    const spec = { ...TCP, port, interval_ms: 1000, timeout_ms: 500 };
    const w = watched(keys.map((k) => target(k, '127.0.0.5', spec)));
    await until('a first check of each', () => new Set(w.results.map((r) => r.key)).size === keys.length, 3000);
    await w.checker.stop();
    const first = keys.map((k) => w.results.find((r) => r.key === k)!.at);
    const offsets = keys.map((k) => firstCheckDelay(k, 1000));
    keys.forEach((_, i) => {
      // Timers count from the loop's cached clock, which may lag a little.
      expect(first[i]).toBeGreaterThanOrEqual(offsets[i] - 10);
      expect(first[i]).toBeLessThan(offsets[i] + 150);
    });
    expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(500);
    expect(new Set(offsets.map((o) => Math.floor(o / 50))).size).toBeGreaterThan(10);
    // From the key alone (32-bit FNV-1a), the same in every process and version.
    expect(firstCheckDelay('tcp:10.0.0.10:80 10.0.0.2:80', 2000)).toBe(709);
  });

  it('update() keeps the state of targets that stay, even with a new check spec; stops removed ones; adds new ones unchecked', async () => {
    const server = net.createServer(sink);
    const port = await listen(server, '127.0.0.6');
    const a = target('a', '127.0.0.6', { ...TCP, port });
    const b = target('b', '127.0.0.6', { ...TCP, port });
    const c = target('c', '127.0.0.6', { ...TCP, port });
    const w = watched([a, b, c]);
    await until('all up', () => [...w.checker.states().values()].every((s) => s.health === 'up'));
    const before = w.checker.states();
    const upEvents = w.events.length;
    w.checker.update([a, { ...b, spec: { ...b.spec, rise: 5, fall: 5, interval_ms: 60 } }, target('d', '127.0.0.6', { ...TCP, port })]);
    const after = w.checker.states();
    expect(after.get('a')).toEqual(before.get('a'));
    expect(after.get('b')).toEqual(before.get('b'));
    expect(after.has('c')).toBe(false);
    expect(after.get('d')).toMatchObject({ health: 'unchecked', successes: 0, failures: 0 });
    const checksOfC = w.results.filter((r) => r.key === 'c').length;
    await until('d up', () => w.checker.states().get('d')?.health === 'up');
    await sleep(120);
    expect(w.results.filter((r) => r.key === 'c').length).toBe(checksOfC);
    expect(w.checker.states().get('a')?.since).toEqual(before.get('a')?.since);
    expect(w.checker.states().get('b')).toMatchObject({ health: 'up', since: before.get('b')?.since });
    expect(w.events.slice(upEvents).map((e) => e.key)).toEqual(['d']);
    // The new fall counts: four failures leave b up, the fifth takes it down.
    await shut(server);
    await until('a and d down', () => ['a', 'd'].every((k) => w.checker.states().get(k)?.health === 'down'));
    await until('b down', () => w.checker.states().get('b')?.health === 'down');
    expect(w.events.filter((e) => e.key === 'b').at(-1)?.line).toBe(`127.0.0.6:${port} down: connect ECONNREFUSED (5 of 5)`);
  });

  it('starts a new target as update() is told: down stays down until rise successes, with its reason kept', async () => {
    const server = net.createServer(sink);
    const port = await listen(server, '127.0.0.8');
    const since = new Date('2026-01-02T03:04:05Z');
    const w = watched([]);
    w.checker.update([target('a', '127.0.0.8', { ...TCP, port }), target('b', '127.0.0.8', { ...TCP, port })],
      new Map([['a', { health: 'down', since, last_error: 'connect ECONNREFUSED' }]]));
    expect(w.checker.states().get('a')).toEqual({ health: 'down', since, last_error: 'connect ECONNREFUSED', successes: 0, failures: 0 });
    expect(w.checker.states().get('b')).toMatchObject({ health: 'unchecked', last_error: null });
    await until('a up', () => w.checker.states().get('a')?.health === 'up');
    expect(w.events.find((e) => e.key === 'a')).toMatchObject({ from: 'down', to: 'up', line: `127.0.0.8:${port} up (2 of 2)` });
    expect(w.checker.states().get('a')?.last_error).toBe('connect ECONNREFUSED');
    // Only new targets take it: one already checked keeps its state.
    const b = w.checker.states().get('b');
    w.checker.update([target('b', '127.0.0.8', { ...TCP, port })], new Map([['b', { health: 'down', since, last_error: 'x' }]]));
    expect(w.checker.states().get('b')).toEqual(b);
  });

  it('stop() aborts checks in flight, and no timer keeps the process alive, even without stop()', async () => {
    const silent = net.createServer(sink);
    const port = await listen(silent, '127.0.0.7');
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-health-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await build({ entryPoints: ['src/programs/lb/health.ts'], bundle: true, platform: 'node', format: 'esm', mainFields: ['module', 'main'], outfile: join(dir, 'health.mjs'), logLevel: 'error' });
    // A 5 s check in flight and next checks 9 s away, each of which would
    // hold the process; the first key is one checked early.
    let i = 0;
    while (firstCheckDelay(`hangs ${i}`, 10000) > 300) i++;
    const hangs = `hangs ${i}`;
    writeFileSync(join(dir, 'child.mjs'), `
import { HealthChecker } from './health.mjs';
const spec = (type, interval_ms) => ({ type, port: ${port}, interval_ms, timeout_ms: 5000, rise: 1, fall: 1, path: '/', expect_status: 200 });
const c = new HealthChecker([
  { key: '${hangs}', backend: 'x', address: '127.0.0.7', spec: spec('http', 10000) },
  { key: 'waits', backend: 'y', address: '127.0.0.7', spec: spec('tcp', 9000) },
], () => {}, { onCheck: (k) => console.log('checked ' + k) });
// Never stopped: its timer must not hold the process either.
new HealthChecker([{ key: 'idle', backend: 'z', address: '127.0.0.7', spec: spec('tcp', 9000) }], () => {});
setTimeout(async () => {
  const t = performance.now();
  await c.stop();
  console.log('stopped in ' + Math.round(performance.now() - t) + ' ms');
}, 200 + ${firstCheckDelay(hangs, 10000)});
`);
    const child = spawn(process.execPath, [join(dir, 'child.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | string | null>((resolve) => {
      const late = setTimeout(() => resolve('still running after 3 s'), 3000);
      child.on('exit', (c) => {
        clearTimeout(late);
        resolve(c);
      });
    });
    expect(code).toBe(0);
    expect(out).not.toContain('checked hangs');
    const stopped = /(?:^|\n)stopped in (\d+) ms\n$/.exec(out);
    expect(stopped).not.toBeNull();
    expect(Number(stopped![1])).toBeLessThan(100);
  });
});

describe('health in the kernel config and the status', () => {
  const config = validateConfig({
    nat: { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' },
    vips: [
      {
        address: '10.0.0.10', port: 80, health: { type: 'http', path: '/healthz' },
        backends: [
          { address: '10.0.0.2' }, { address: '10.0.0.3', weight: 0 }, { address: '10.0.0.4', weight: 3 },
          { address: '10.0.0.5', health: false }, { address: '10.0.0.6', weight: 2 },
        ],
      },
      { address: 'fd00::10', port: 53, protocol: 'udp', health: { port: 8053 }, backends: [{ address: 'fd00::2' }] },
    ],
  });
  const at = new Date('2026-01-02T03:04:05Z');
  const state = (health: HealthState['health'], last_error: string | null = null): HealthState => ({ health, since: at, last_error, successes: 0, failures: 0 });
  const v4 = config.vips[0];
  const v6 = config.vips[1];
  const states = new Map<string, HealthState>([
    [targetKey(v4, v4.backends[0]), state('down', 'HTTP 503')],
    [targetKey(v4, v4.backends[1]), state('down', 'connect ECONNREFUSED')],
    [targetKey(v4, v4.backends[2]), state('up', 'timeout after 1000 ms')],
    // Left over from a config that checked it: ignored.
    [targetKey(v4, v4.backends[3]), state('down', 'HTTP 500')],
  ]);

  it('lists a target per checked backend, at its own address and health port', () => {
    expect(healthTargets(config).map((t) => [t.key, t.backend, t.address, t.spec.type, t.spec.port])).toEqual([
      ['tcp:10.0.0.10:80 10.0.0.2:80', '10.0.0.2:80', '10.0.0.2', 'http', 80],
      ['tcp:10.0.0.10:80 10.0.0.3:80', '10.0.0.3:80', '10.0.0.3', 'http', 80],
      ['tcp:10.0.0.10:80 10.0.0.4:80', '10.0.0.4:80', '10.0.0.4', 'http', 80],
      ['tcp:10.0.0.10:80 10.0.0.6:80', '10.0.0.6:80', '10.0.0.6', 'http', 80],
      ['udp:[fd00::10]:53 [fd00::2]:53', '[fd00::2]:53', 'fd00::2', 'tcp', 8053],
    ]);
  });

  it('gives a down backend weight 0 and changes nothing else', () => {
    const k = kernelConfig(config, states);
    expect(k.vips[0].backends.map((b) => b.weight)).toEqual([0, 0, 3, 1, 2]);
    const weights = [...config.vips[0].backends.map((b) => b.weight)];
    weights[0] = 0;
    expect(k).toEqual({ ...config, vips: [{ ...v4, backends: v4.backends.map((b, i) => ({ ...b, weight: weights[i] })) }, v6] });
    expect(k.vips[1]).toBe(v6);
    expect(config.vips[0].backends[0].weight).toBe(1);
    expect(kernelConfig(config, new Map())).toEqual(config);
  });

  it('keeps an operator\'s weight 0 whatever the health: up, unchecked or down', () => {
    for (const health of ['up', 'unchecked', 'down'] as const) {
      const k = kernelConfig(config, new Map([[targetKey(v4, v4.backends[1]), state(health)]]));
      expect([health, k.vips[0].backends.map((b) => b.weight)]).toEqual([health, [1, 0, 3, 1, 2]]);
    }
    expect(healthStatus(config, new Map([[targetKey(v4, v4.backends[1]), state('up')]]))['tcp:10.0.0.10:80'].healthy).toBe(4);
  });

  it('reports per backend health, since and last error, and per VIP the backends taking new flows', () => {
    const s = healthStatus(config, states);
    expect(s).toEqual({
      'tcp:10.0.0.10:80': {
        healthy: 3,
        backends: {
          '10.0.0.2:80': { health: 'down', since: at, last_error: 'HTTP 503' },
          '10.0.0.3:80': { health: 'down', since: at, last_error: 'connect ECONNREFUSED' },
          '10.0.0.4:80': { health: 'up', since: at, last_error: 'timeout after 1000 ms' },
          '10.0.0.5:80': { health: 'unchecked', since: null, last_error: null },
          '10.0.0.6:80': { health: 'unchecked', since: null, last_error: null },
        },
      },
      'udp:[fd00::10]:53': { healthy: 1, backends: { '[fd00::2]:53': { health: 'unchecked', since: null, last_error: null } } },
    });
  });

  it('says it in one line for the status table', () => {
    const now = new Date(at.getTime() + 192_000);
    expect(healthText({ health: 'up', since: at, last_error: 'HTTP 503' }, now)).toBe('up 3m12s');
    expect(healthText({ health: 'down', since: at, last_error: 'connect ECONNREFUSED' }, new Date(at.getTime() + 40_900))).toBe('down 40s: connect ECONNREFUSED');
    expect(healthText({ health: 'down', since: at, last_error: 'HTTP 500' }, new Date(at.getTime() + 90_061_000))).toBe('down 1d1h: HTTP 500');
    expect(healthText({ health: 'unchecked', since: null, last_error: null }, now)).toBe('unchecked');
  });
});
