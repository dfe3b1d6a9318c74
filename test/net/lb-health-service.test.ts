// Health checks inside `xdp-lb run`, in the tutorial's lab (a client, the
// balancer, two `python3 -m http.server` backends): a killed server is
// drained in the kernel after `fall` checks and logged with its reason and
// priority, clients then reach only the other backend; a restart of the
// service (SIGKILL, start) moves no weight and no table entry and carries the
// drained backend over as down; the server back is taken back after `rise`;
// an operator's weight 0 stays 0 whatever the health; a reload keeps every
// state; `--status` shows health from the published state and says when
// its writer is gone; a real stop removes it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { BIN, ok, run } from '../helpers/cli.js';
import { inNs, makeLbLab, startHttpBackends, waitFor, type LbLab } from '../helpers/lblab.js';
import { pinnedView } from '../helpers/lbstate.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from '../helpers/service.js';

let lab: LbLab | undefined;
let dir: string | undefined;
const daemons: Array<{ d: Daemon; n: NotifySocket }> = [];
afterEach(async () => {
  for (const { d, n } of daemons.reverse()) {
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
    n.close();
  }
  daemons.length = 0;
  lab?.destroy();
  lab = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('drains a dead backend through the service, keeps the table still across a restart, and takes it back', async () => {
  lab = makeLbLab();
  const l = lab;
  await startHttpBackends(l);
  dir = mkdtempSync(join(tmpdir(), 'xdplb-health-svc-'));
  const runDir = join(dir, 'run');
  const env = { XDPLB_RUN_DIR: runDir };
  // A timeout with room: python's http.server on a busy 2-core machine can
  // take over 100 ms to answer once in a while.
  const health = { type: 'http', path: '/who', interval_ms: 300, timeout_ms: 250, rise: 2, fall: 3 };
  const section = {
    nat: { source_ipv4: '10.0.0.10' },
    vips: [
      { address: '10.0.0.10', port: 8000, health, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }] },
      // An operator's drain: b1 at weight 0, checked like any backend.
      { address: '10.0.0.10', port: 9000, health, backends: [{ address: '10.0.0.2', port: 8000, weight: 0 }, { address: '10.0.0.3', port: 8000 }] },
    ],
  };
  const config = join(dir, 'xdplb.json');
  const write = (s: object) => writeFileSync(config, JSON.stringify({ interfaces: [l.lbIf], mode: 'native', lb: { enabled: true, ...s } }));
  write(section);
  const daemon = async (command: string) => {
    const n = new NotifySocket();
    await n.start();
    // JOURNAL_STREAM: lines carry their syslog priority, as under journald.
    const d = startDaemon([...netnsWithSys(l.ns.lb), BIN(command), 'run', '--config', config], { NOTIFY_SOCKET: n.path, JOURNAL_STREAM: '0:0', ...env });
    daemons.push({ d, n });
    await n.waitFor(/^READY=1$/);
    return { d, n };
  };
  const cli = (args: string[]) => ok(run(BIN('xdp-lb'), args, { netns: l.ns.lb, env }));
  const status = () => JSON.parse(cli(['--status', '--json']));
  const backends = (port: number) => status().vips.find((v: { port: number }) => v.port === port).backends
    .map((b: { address: string; weight: number; health: string | null }) => [b.address, b.weight, b.health]);
  const b1 = () => status().vips[0].backends[0];
  const until = async (what: string, cond: () => boolean, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(backends(8000))}; ${daemons.at(-1)!.d.stderr.join(' | ')}`);
      await sleep(50);
    }
  };
  const logged = (d: Daemon, line: string) => until(line, () => d.stderr.includes(line));
  const who = (n: number) => Array.from({ length: n }, (_, i) =>
    inNs(l.ns.client, 'curl', ['-s', '--max-time', '2', '--interface', l.clients4[i % 3], 'http://10.0.0.10:8000/who']));

  await daemon('xdp-root');
  let lb = await daemon('xdp-lb');
  await until('both up', () => JSON.stringify([...backends(8000), ...backends(9000)].map((b) => b[2])) === '["up","up","up","up"]');
  expect(backends(8000)).toEqual([['10.0.0.2', 1, 'up'], ['10.0.0.3', 1, 'up']]);
  // The operator's 0 stays 0 while its backend is up.
  expect(backends(9000)).toEqual([['10.0.0.2', 0, 'up'], ['10.0.0.3', 1, 'up']]);
  expect(new Set(who(12))).toEqual(new Set(['b1', 'b2']));

  // b1's server dies: down after 3 failed checks, drained in the kernel.
  const first = l.servers[0];
  const gone = new Promise((r) => first.once('exit', r));
  first.kill('SIGKILL');
  await gone;
  await logged(lb.d, '<4>xdp-lb: lb: 10.0.0.2:8000 down: connect ECONNREFUSED (3 of 3); tcp:10.0.0.10:8000 has 1 of 2 backends healthy');
  await logged(lb.d, '<4>xdp-lb: lb: 10.0.0.2:8000 down: connect ECONNREFUSED (3 of 3); tcp:10.0.0.10:9000 has 1 of 2 backends healthy (10.0.0.2:8000 has weight 0 in the config: it stays drained)');
  await until('b1 drained', () => backends(8000)[0][1] === 0);
  expect(backends(8000)).toEqual([['10.0.0.2', 0, 'down'], ['10.0.0.3', 1, 'up']]);
  expect(b1().last_error).toBe('connect ECONNREFUSED');
  expect(pinnedView(l.ns.lb)).toEqual({
    vips: {
      'tcp:10.0.0.10:8000': { table_size: 65537, backends: ['10.0.0.2:8000 weight 0', '10.0.0.3:8000 weight 1'] },
      'tcp:10.0.0.10:9000': { table_size: 65537, backends: ['10.0.0.2:8000 weight 0', '10.0.0.3:8000 weight 1'] },
    },
    problems: [],
  });
  await logged(lb.d, '<6>xdp-lb: lb: vip tcp:10.0.0.10:8000 backend 10.0.0.2:8000 weight 1 -> 0');
  expect(new Set(who(12))).toEqual(new Set(['b2']));
  const vip = status().vips[0];
  expect([vip.healthy, vip.announced, vip.announcement]).toEqual([1, null, 'not announced: no "bgp" in the config']);
  const text = cli(['--status']);
  expect(text).toMatch(/│ tcp:10\.0\.0\.10:8000 +│ nat, table 65537 +│ 1\/2 healthy +│/);
  expect(text).toMatch(/│ {3}10\.0\.0\.2:8000 +│ weight 0 +│ down \d+s: connect ECONNREFUSED +│/);
  expect(text).toMatch(/│ {3}10\.0\.0\.3:8000 +│ weight 1 +│ up \d+s +│/);
  expect(text).toContain(`Health and announcements from xdp-lb run (pid ${lb.d.proc.pid}), updated `);
  expect(text).toContain('BGP: not announcing (no "bgp" in the config)');
  const since = b1().since;

  // Killed: the published state stays, marked stale.
  lb.d.proc.kill('SIGKILL');
  await lb.d.exited;
  expect(status().service).toMatchObject({ pid: lb.d.proc.pid, running: false });
  expect(cli(['--status'])).toContain(`STALE: xdp-lb run (pid ${lb.d.proc.pid}) is not running; health and announcements as it last published them`);
  // Started again: b1 stays down (the kernel holds it drained), nothing moves.
  const views = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      views.add(JSON.stringify(pinnedView(l.ns.lb)));
      await sleep(20);
    }
  })();
  lb = await daemon('xdp-lb');
  await sleep(1500);
  watching = false;
  await watcher;
  expect(views.size).toBe(1);
  expect(lb.d.stderr).toContain('<5>xdp-lb: lb: 10.0.0.2:8000 of tcp:10.0.0.10:8000 stays drained as the kernel holds it, down until 2 checks pass (connect ECONNREFUSED)');
  expect(lb.d.stderr.filter((x) => /as the kernel holds it/.test(x))).toHaveLength(1);
  expect(lb.d.stderr.filter((x) => / -> /.test(x))).toEqual([]);
  expect(b1()).toMatchObject({ address: '10.0.0.2', weight: 0, health: 'down', since, last_error: 'connect ECONNREFUSED' });
  expect(status().service).toMatchObject({ pid: lb.d.proc.pid, running: true, attached: true });

  // A reload that changes the checks keeps every state.
  write({ ...section, vips: section.vips.map((v) => ({ ...v, health: { ...health, interval_ms: 300 } })) });
  const mark = lb.n.lines.length;
  lb.d.proc.kill('SIGHUP');
  await lb.n.waitFor(/^READY=1$/, mark);
  expect(backends(8000)).toEqual([['10.0.0.2', 0, 'down'], ['10.0.0.3', 1, 'up']]);
  expect(b1()).toMatchObject({ since, last_error: 'connect ECONNREFUSED' });

  // The server back: up after 2 checks, in the table again; the operator's 0 stays.
  l.servers.push(spawn('nsenter', [`--net=/run/netns/${l.ns.b1}`, 'python3', '-m', 'http.server', '8000', '--bind', '::', '--directory', join(l.dir, 'b1')], { stdio: 'ignore' }));
  await logged(lb.d, '<5>xdp-lb: lb: 10.0.0.2:8000 up (2 of 2); tcp:10.0.0.10:8000 has 2 of 2 backends healthy');
  await until('b1 back', () => backends(8000)[0][1] === 1);
  expect(backends(8000)).toEqual([['10.0.0.2', 1, 'up'], ['10.0.0.3', 1, 'up']]);
  expect(backends(9000)).toEqual([['10.0.0.2', 0, 'up'], ['10.0.0.3', 1, 'up']]);
  expect(new Set(who(12))).toEqual(new Set(['b1', 'b2']));
  // The reconciliation found nothing to repair all along.
  expect(lb.d.stderr.filter((x) => /repairing/.test(x))).toEqual([]);

  // A real stop: nothing published any more.
  lb.d.proc.kill('SIGTERM');
  expect(await lb.d.exited).toBe(0);
  expect(status().service).toBe(null);
  expect(readdirSync(runDir).flatMap((d) => readdirSync(join(runDir, d)))).toEqual([]);
  expect(existsSync(runDir)).toBe(true);
}, 120_000);
