// xdp-lb's applies as operators run them, with the state checked by a
// reader of the test's own (test/helpers/lbstate.ts): backends removed and
// added back while new flows arrive without one flow dropped, two applies
// at once, applies killed at random points then repaired, and the service
// repairing what was changed behind its back.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BpfMap, MAP_F, MAP_TYPE } from '../../src/libbpf/index.js';
import { validateConfig } from '../../src/programs/lb/config.js';
import { BIN, ok, run, xdpRoot, type Run } from '../helpers/cli.js';
import { loadScript, makeLbLab, startHttpBackends, type LbLab, type RequestRecord } from '../helpers/lblab.js';
import { makeLab, nsPinDir, type Lab } from '../helpers/netns.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from '../helpers/service.js';
import { configView, pinnedView, type LbView } from '../helpers/lbstate.js';

/** Run a command in a namespace without waiting; `proc.pid` is the
 *  command's own (nsenter execs it). */
function start(netns: string, cmd: string, args: string[]) {
  const proc = spawn('nsenter', [`--net=/run/netns/${netns}`, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<Run & { signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr })));
  return { proc, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('xdp-lb: backends removed and added back under new flows', () => {
  let lab: LbLab | undefined;
  afterEach(() => {
    lab?.destroy();
    lab = undefined;
  });

  it('drops no new flow (no_backend stays 0) and fails no request across removals and re-adds', async () => {
    lab = makeLbLab();
    const l = lab;
    await startHttpBackends(l);
    const lb = (args: string[]) => ok(run(BIN('xdp-lb'), args, { netns: l.ns.lb }));
    ok(xdpRoot(['--attach', '--interface', l.lbIf, '--mode', 'native'], { netns: l.ns.lb }));
    lb(['--attach', '--interface', l.lbIf]);
    lb(['--vip-add', 'tcp:10.0.0.10:8000', '--backend', '10.0.0.2,10.0.0.3', '--nat-source', '10.0.0.10']);
    // Short connections, each a new flow, from the three client addresses.
    const load = new Promise<RequestRecord[]>((resolve, reject) => {
      const p = spawn('nsenter', [`--net=/run/netns/${l.ns.client}`, process.execPath, '-e',
        loadScript({ url: 'http://10.0.0.10:8000/who', locals: l.clients4, ms: 7000, concurrency: 16 })], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exit ${code}`))));
    });
    await sleep(1000);
    const changes: Array<[string, string]> = [['--backend-del', '10.0.0.3'], ['--backend-add', '10.0.0.3'], ['--backend-del', '10.0.0.2'], ['--backend-add', '10.0.0.2']];
    for (const [action, backend] of [...changes, ...changes]) {
      expect(lb([action, 'tcp:10.0.0.10:8000', '--backend', backend])).toMatch(/^Applied: 1 changed, 1 Maglev table\(s\) swapped, 1 backend entries written\.\n$/);
      await sleep(500);
    }
    const records = await load;
    const s = JSON.parse(lb(['--status', '--json']));
    const vip = s.vips[0];
    expect(vip.counters.no_backend).toBe(0);
    expect(records.filter((r) => !r.who)).toEqual([]);
    expect(records.length).toBeGreaterThan(500);
    expect(vip.counters.new_conns).toBeGreaterThanOrEqual(records.length);
    expect(vip.backends.map((b: { address: string; removed: boolean }) => [b.address, b.removed])).toEqual([['10.0.0.2', false], ['10.0.0.3', false]]);
  });
});

describe('xdp-lb --apply, concurrent and killed', () => {
  let lab: Lab;
  let dir: string;
  beforeAll(() => {
    lab = makeLab();
    dir = mkdtempSync(join(tmpdir(), 'xdplb-lb-apply-'));
    ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns: lab.server }));
    ok(run(BIN('xdp-lb'), ['--attach', '--interface', lab.serverIf], { netns: lab.server }));
  });
  afterAll(() => {
    if (lab) run(BIN('xdp-lb'), ['--detach', '--interface', lab.serverIf], { netns: lab.server });
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Two configs that differ in every way an apply can: VIPs added and
  // removed, backends added, removed and re-weighted, table sizes. The VIPs
  // are the server's own address (no warning about them).
  const vips = (n: number, first: number, backends: number, weight: (v: number, b: number) => number, size: (v: number) => number) =>
    Array.from({ length: n }, (_, i) => ({
      address: '10.201.0.2', port: 1000 + first + i, protocol: 'tcp', table_size: size(first + i),
      backends: Array.from({ length: backends }, (_, b) => ({ address: `10.202.${first + i}.${b + 1}`, weight: weight(first + i, b) })),
    }));
  // Half the VIPs of each are the other's: removing a VIP waits for an RCU
  // grace period of its own, which gives the kills below a wide window.
  const X = { nat: { source_ipv4: '10.201.0.2' }, vips: vips(20, 0, 12, (v, b) => 1 + ((v + b) % 3), () => 65537) };
  const Y = { nat: { source_ipv4: '10.201.0.2', port_min: 2000 }, vips: vips(20, 10, 10, (v, b) => 1 + (b % 4), (v) => (v % 2 ? 131071 : 7)) };
  const views: Record<string, LbView> = { X: configView(validateConfig(X)), Y: configView(validateConfig(Y)) };
  const file = (name: string, config: unknown) => {
    const path = join(dir, `${name}.json`);
    writeFileSync(path, JSON.stringify(config));
    return path;
  };
  const apply = (path: string) => start(lab.server, BIN('xdp-lb'), ['--apply', path]);
  const holds = () => {
    const v = pinnedView(lab.server);
    return Object.keys(views).find((k) => isDeepStrictEqual(views[k], v)) ?? v;
  };

  it('runs two applies of different configs at once: the kernel ends in exactly one of them, every time', async () => {
    const paths = [file('x', X), file('y', Y)];
    for (let i = 0; i < 10; i++) {
      const both = await Promise.all(paths.map((p) => apply(p).done));
      expect(both.map((r) => [r.code, r.stderr])).toEqual([[0, ''], [0, '']]);
      expect(['X', 'Y']).toContain(holds());
    }
    // Each apply wrote its whole config over the other's (or found it there).
    expect(ok(run(BIN('xdp-lb'), ['--apply', paths[0]], { netns: lab.server }))).toMatch(/^(Applied|Nothing to change)/);
    expect(holds()).toBe('X');
  }, 180_000);

  it('repairs, with the next apply of the same config, an apply killed at a random point', async () => {
    const paths: Record<string, string> = { X: file('x', X), Y: file('y', Y) };
    ok(run(BIN('xdp-lb'), ['--apply', paths.X], { netns: lab.server }));
    // How long a whole apply takes here: the kills land within it.
    const t0 = Date.now();
    expect((await apply(paths.Y).done).code).toBe(0);
    const span = Date.now() - t0;
    ok(run(BIN('xdp-lb'), ['--apply', paths.X], { netns: lab.server }));
    let partial = 0;
    for (let i = 0; i < 12; i++) {
      const target = i % 2 ? 'X' : 'Y';
      const a = apply(paths[target]);
      // Past start-up (most of a short command's time), into the writes.
      await sleep(span * (0.3 + 0.7 * Math.random()));
      a.proc.kill('SIGKILL');
      await a.done;
      const left = holds();
      if (typeof left !== 'string') partial++;
      expect(ok(run(BIN('xdp-lb'), ['--apply', paths[target]], { netns: lab.server }))).toMatch(/^(Applied|Nothing to change)/);
      expect([i, holds()]).toEqual([i, target]);
      expect(ok(run(BIN('xdp-lb'), ['--apply', paths[target]], { netns: lab.server }))).toBe('Nothing to change: the kernel already holds this config.\n');
    }
    expect(partial).toBeGreaterThan(0);
  }, 180_000);

  it('warns, in one line and without refusing, of a VIP that is not an address of this namespace', () => {
    const away = 'VIP tcp:10.201.0.99:80: 10.201.0.99 is not an address of this network namespace, so nothing here answers ARP for it: ' +
      'add it to an interface (ip address add 10.201.0.99/32 dev lo) or have it routed to this host';
    const r = run(BIN('xdp-lb'), ['--vip-add', 'tcp:10.201.0.99:80', '--backend', '10.202.0.1'], { netns: lab.server });
    expect([r.code, r.stdout, r.stderr]).toEqual([0, 'Applied: 1 VIP(s) added, 1 Maglev table(s) swapped, 1 backend entries written.\n', `xdp-lb: warning: ${away}\n`]);
    // Every apply says so while it lasts; made local, it is not named.
    const edit = run(BIN('xdp-lb'), ['--weight', '2', '--vip', 'tcp:10.201.0.99:80', '--backend', '10.202.0.1'], { netns: lab.server });
    expect([edit.code, edit.stderr]).toEqual([0, `xdp-lb: warning: ${away}\n`]);
    run('ip', ['address', 'add', '10.201.0.99/32', 'dev', 'lo'], { netns: lab.server });
    const local = run(BIN('xdp-lb'), ['--apply', file('x', X)], { netns: lab.server });
    expect([local.code, local.stderr]).toEqual([0, '']);
  });
});

describe('xdp-lb in two network namespaces', () => {
  it('keeps each namespace\'s VIPs to itself: applies, status and purge in one leave the other as it was', () => {
    const labs = [makeLab(), makeLab()];
    try {
      const lb = (l: Lab, args: string[]) => ok(run(BIN('xdp-lb'), args, { netns: l.server }));
      labs.forEach((l, i) => {
        ok(xdpRoot(['--attach', '--interface', l.serverIf, '--mode', 'skb'], { netns: l.server }));
        lb(l, ['--attach', '--interface', l.serverIf]);
        lb(l, ['--vip-add', `tcp:10.201.0.2:${8000 + i}`, '--backend', '10.201.0.1', '--nat-source', '10.201.0.2']);
      });
      const vips = (l: Lab) => JSON.parse(lb(l, ['--status', '--json'])).vips.map((v: { port: number }) => v.port);
      expect(labs.map(vips)).toEqual([[8000], [8001]]);
      lb(labs[1], ['--vip-del', 'tcp:10.201.0.2:8001']);
      expect(labs.map(vips)).toEqual([[8000], []]);
      lb(labs[1], ['--detach', '--interface', labs[1].serverIf]);
      lb(labs[1], ['--purge']);
      expect(existsSync(`${nsPinDir(labs[1].server)}/lb`)).toBe(false);
      ok(xdpRoot(['--detach', '--interface', labs[1].serverIf], { netns: labs[1].server }));
      // Nothing of ours is left pinned for that namespace: its directory goes.
      expect(existsSync(nsPinDir(labs[1].server))).toBe(false);
      expect(existsSync(nsPinDir(labs[0].server))).toBe(true);
      expect(vips(labs[0])).toEqual([8000]);
      expect(pinnedView(labs[0].server).problems).toEqual([]);
    } finally {
      for (const l of labs) {
        run(BIN('xdp-lb'), ['--detach', '--interface', l.serverIf], { netns: l.server });
        run(BIN('xdp-lb'), ['--purge'], { netns: l.server });
        l.destroy();
      }
    }
  });
});

describe('xdp-lb run', () => {
  let lab: Lab | undefined;
  let dir: string | undefined;
  const daemons: Array<{ d: Daemon; n: NotifySocket }> = [];
  afterEach(async () => {
    for (const { d, n } of daemons.reverse()) {
      if (d.proc.exitCode === null) {
        d.proc.kill('SIGKILL');
        await d.exited;
      }
      n.close();
    }
    daemons.length = 0;
    lab?.destroy();
    lab = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('repairs what was changed behind its back: a VIP removed, a backend re-weighted, a table written over', async () => {
    lab = makeLab();
    const l = lab;
    dir = mkdtempSync(join(tmpdir(), 'xdplb-lb-run-'));
    const section = {
      nat: { source_ipv4: '10.201.0.2' },
      vips: [
        { address: '10.201.0.2', port: 8000, protocol: 'tcp', backends: [{ address: '10.201.0.3' }, { address: '10.201.0.4', weight: 2 }] },
        { address: '10.201.0.2', port: 53, protocol: 'udp', backends: [{ address: '10.201.0.5' }] },
        { address: '10.201.0.98', port: 80, protocol: 'tcp', backends: [{ address: '10.201.0.6' }] },
      ],
    };
    const config = join(dir, 'xdplb.json');
    writeFileSync(config, JSON.stringify({ interfaces: [l.serverIf], mode: 'native', lb: { enabled: true, ...section } }));
    const daemon = async (command: string) => {
      const n = new NotifySocket();
      await n.start();
      const d = startDaemon([...netnsWithSys(l.server), BIN(command), 'run', '--config', config], { NOTIFY_SOCKET: n.path });
      daemons.push({ d, n });
      await n.waitFor(/^READY=1$/);
      return d;
    };
    await daemon('xdp-root');
    const lb = await daemon('xdp-lb');
    const want = configView(validateConfig(section));
    expect(pinnedView(l.server)).toEqual(want);
    expect(lb.stderr).toContain('xdp-lb: lb: VIP tcp:10.201.0.98:80: 10.201.0.98 is not an address of this network namespace, so nothing here ' +
      'answers ARP for it: add it to an interface (ip address add 10.201.0.98/32 dev lo) or have it routed to this host');
    const repaired = async (what: RegExp) => {
      const from = lb.stderr.length;
      for (let i = 0; i < 100 && !lb.stderr.slice(from).some((line) => what.test(line)); i++) await sleep(100);
      expect(lb.stderr.slice(from)).toContainEqual(expect.stringMatching(what));
      // The line comes as the repair starts: give its writes time to land
      // (a table swapped out under the reader reads as missing).
      const view = () => {
        try {
          return pinnedView(l.server);
        } catch {
          return null;
        }
      };
      for (let i = 0; i < 50 && !isDeepStrictEqual(view(), want); i++) await sleep(100);
      expect(pinnedView(l.server)).toEqual(want);
    };
    const cli = (args: string[]) => ok(run(BIN('xdp-lb'), args, { netns: l.server }));

    cli(['--vip-del', 'udp:10.201.0.2:53']);
    await repaired(/^xdp-lb: repairing: lb: the kernel does not hold the configured VIPs \(to write: .*\bVIPs\b.*\)$/);
    cli(['--weight', '5', '--vip', 'tcp:10.201.0.2:8000', '--backend', '10.201.0.3']);
    await repaired(/^xdp-lb: repairing: lb: the kernel does not hold the configured VIPs \(to write: backend entries, 1 Maglev table\(s\)\)$/);
    // A table of the right size whose entries all name no backend.
    const outer = BpfMap.openPinned(`${nsPinDir(l.server)}/lb/lb_maglev`)!;
    const wrong = BpfMap.create(MAP_TYPE.ARRAY, 'lb_table', 4, 8, 65537, MAP_F.INNER_MAP | MAP_F.MMAPABLE);
    try {
      wrong.writeMapped(Buffer.alloc(65537 * 8, 0xff), 65537);
      const id = outer.entries().map(([k]) => k.readUInt32LE(0))[0];
      outer.update(id, Buffer.from(new Uint32Array([wrong.fd]).buffer));
    } finally {
      wrong.close();
      outer.close();
    }
    await repaired(/^xdp-lb: repairing: lb: the kernel does not hold the configured VIPs \(to write: 1 Maglev table\(s\)\)$/);
  }, 120_000);
});
