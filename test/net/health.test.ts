// Health checks from the balancer's namespace of the tutorial's lab to
// `python3 -m http.server` backends: a killed server goes down after exactly
// `fall` failed checks and, restarted, up after exactly `rise` (its own
// request log counting the checks); an address nobody answers on the segment
// times out; down backends get weight 0 in the config the kernel would get.
// No BPF program is involved: the checks are the control plane's.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { validateConfig } from '../../src/programs/lb/config.js';
import { HealthChecker, healthStatus, healthTargets, kernelConfig, type HealthEvent } from '../../src/programs/lb/health.js';
import { enterNetns } from '../helpers/netns.js';
import { makeLbLab, startHttpBackends, type LbLab } from '../helpers/lblab.js';

let lab: LbLab | undefined;
let checker: HealthChecker | undefined;
let leave: (() => void) | undefined;
afterEach(async () => {
  await checker?.stop();
  checker = undefined;
  leave?.();
  leave = undefined;
  lab?.destroy();
  lab = undefined;
});


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** b1's http.server again, its request log (stderr) kept. */
function restartB1(l: LbLab): { proc: ChildProcess; log: () => string } {
  let log = '';
  const proc = spawn('nsenter', [`--net=/run/netns/${l.ns.b1}`, 'python3', '-u', '-m', 'http.server', '8000', '--bind', '::', '--directory', join(l.dir, 'b1')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  proc.stderr!.on('data', (d) => (log += d));
  l.servers.push(proc);
  return { proc, log: () => log };
}

it('drains a backend whose server died after exactly fall failed checks, and takes it back after exactly rise', async () => {
  lab = makeLbLab();
  await startHttpBackends(lab);
  const config = validateConfig({
    nat: { source_ipv4: '10.0.0.10' },
    vips: [
      {
        address: '10.0.0.10', port: 8000,
        health: { type: 'http', path: '/who', interval_ms: 200, timeout_ms: 100, rise: 2, fall: 3 },
        backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }],
      },
      {
        // 10.0.0.99 is on the segment but nobody has it: the SYN waits for a
        // neighbour that never answers.
        address: '10.0.0.10', port: 9000, health: { interval_ms: 200, timeout_ms: 100, fall: 3 },
        backends: [{ address: '10.0.0.3', port: 8000 }, { address: '10.0.0.99', port: 8000 }],
      },
    ],
  });
  const history = new Map<string, string>();
  const events: HealthEvent[] = [];
  const note = (key: string, c: string) => history.set(key, (history.get(key) ?? '') + c);
  leave = enterNetns(lab.ns.lb);
  checker = new HealthChecker(healthTargets(config), (e) => {
    events.push(e);
    note(e.key, e.to === 'up' ? 'U' : 'D');
  }, { onCheck: (key, r) => note(key, r.ok ? '+' : '-') });
  const B1 = 'tcp:10.0.0.10:8000 10.0.0.2:8000';
  const B2 = 'tcp:10.0.0.10:8000 10.0.0.3:8000';
  const TCP_B2 = 'tcp:10.0.0.10:9000 10.0.0.3:8000';
  const HOLE = 'tcp:10.0.0.10:9000 10.0.0.99:8000';
  const line = (key: string) => events.filter((e) => e.key === key).map((e) => e.line);
  const health = () => Object.fromEntries([...checker!.states()].map(([k, s]) => [k, s.health]));

  await until('first decisions', () => Object.values(health()).every((h) => h !== 'unchecked') && Object.keys(health()).length === 4);
  expect(health()).toEqual({ [B1]: 'up', [B2]: 'up', [TCP_B2]: 'up', [HOLE]: 'down' });
  for (const k of [B1, B2, TCP_B2]) expect(history.get(k)).toMatch(/^\+\+U\+*$/);
  expect(history.get(HOLE)).toMatch(/^---D-*$/);
  expect(line(B1)).toEqual(['10.0.0.2:8000 up (2 of 2)']);
  expect(line(HOLE)).toEqual(['10.0.0.99:8000 down: timeout after 100 ms (3 of 3)']);
  expect(kernelConfig(config, checker.states()).vips.map((v) => v.backends.map((b) => b.weight))).toEqual([[1, 1], [1, 0]]);

  // Kill b1's server by its own pid (nsenter execs python3 in place).
  const first = lab.servers[0];
  const gone = new Promise((r) => first.once('exit', r));
  const mark = history.get(B1)!.length;
  first.kill('SIGKILL');
  await gone;
  await until('b1 down', () => checker!.states().get(B1)?.health === 'down');
  expect(history.get(B1)!.slice(mark)).toMatch(/^\+?---D$/);
  expect(line(B1)).toEqual(['10.0.0.2:8000 up (2 of 2)', '10.0.0.2:8000 down: connect ECONNREFUSED (3 of 3)']);
  const drained = kernelConfig(config, checker.states());
  expect(drained.vips.map((v) => v.backends.map((b) => b.weight))).toEqual([[0, 1], [1, 0]]);
  expect(drained.vips.map((v) => v.table_size)).toEqual(config.vips.map((v) => v.table_size));
  const status = healthStatus(config, checker.states());
  expect([status['tcp:10.0.0.10:8000'].healthy, status['tcp:10.0.0.10:9000'].healthy]).toEqual([1, 1]);
  expect(status['tcp:10.0.0.10:8000'].backends['10.0.0.2:8000']).toMatchObject({ health: 'down', last_error: 'connect ECONNREFUSED' });
  expect(line(B2)).toEqual(['10.0.0.3:8000 up (2 of 2)']);

  const again = restartB1(lab);
  const back = history.get(B1)!.length;
  await until('b1 up again', () => checker!.states().get(B1)?.health === 'up');
  const states = checker.states();
  await checker.stop();
  await sleep(300);
  const after = history.get(B1)!.slice(back);
  expect(after).toMatch(/^-*\+\+U\+*$/);
  expect(line(B1)[2]).toBe('10.0.0.2:8000 up (2 of 2)');
  // The restarted server logged one GET /who from the balancer per success.
  const gets = again.log().split('\n').filter((l) => /^10\.0\.0\.10 .*"GET \/who HTTP\/1\.1" 200/.test(l.replace(/^::ffff:/, '')));
  expect(gets).toHaveLength(after.split('').filter((c) => c === '+').length);
  expect(kernelConfig(config, states).vips.map((v) => v.backends.map((b) => b.weight))).toEqual([[1, 1], [1, 0]]);
});
