// Stateless balancing with real traffic: two balancers behind a router's
// ECMP route, four backends running the decapsulator, an echo server and
// python3 -m http.server (test/helpers/statelesslab.ts). Long-lived TCP
// connections (from fixed ports, so that each one's table entry is known)
// carry a line every 200 ms, each reply checked, while backends are added,
// removed and reweighted, while one balancer's route is withdrawn and comes
// back, and through SYN floods; new connections are checked against the
// kernel's table, and HTTP requests (a new connection each) run throughout.
// One lab for the file: its parts run in order.
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from '../helpers/service.js';
import {
  BACKENDS, BALANCERS, HTTP_PORT, NAT_VIP, PORT, VIP, applyIn, decapStats, makeStatelessLab, startClient, statelessView, waitForEcho, withLbPins,
  type Client, type ConnView, type StatelessLab,
} from '../helpers/statelesslab.js';

const LONG = 60; // long-lived connections through the stateless VIP, from ports 40000..
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let lab: StatelessLab;
let client: Client;
const daemons: Array<{ d: Daemon; n: NotifySocket }> = [];

type Backend = { address: string; weight?: number };
const b = (i: number, weight?: number): Backend => (weight ? { address: BACKENDS[i - 1], weight } : { address: BACKENDS[i - 1] });
/** Balancer `i`'s config: the stateless VIP with `backends` (echo and HTTP), and a NAT VIP. */
const config = (i: number, backends: Backend[], extra: Record<string, unknown> = {}) => ({
  nat: { source_ipv4: BALANCERS[i] },
  encap_source_ipv4: BALANCERS[i],
  vips: [
    { address: VIP, port: PORT, protocol: 'tcp', forwarding: 'gue', stateless: true, backends, ...extra },
    { address: VIP, port: HTTP_PORT, protocol: 'tcp', forwarding: 'gue', stateless: true, backends, ...extra },
    { address: NAT_VIP, port: PORT, protocol: 'tcp', backends: [b(1), b(2), b(3)] },
  ],
});
const both = (backends: Backend[]) => [0, 1].map((i) => applyIn(lab, i, config(i, backends)));
const nameOf = (address: string) => `b${BACKENDS.indexOf(address) + 1}`;
const lbStatus = (i: number) => JSON.parse(execFileSync('nsenter', [`--net=/run/netns/${lab.ns.lb[i]}`, BIN('xdp-lb'), '--status', '--json'], { encoding: 'utf8' }));
const vipCounters = (i: number, vip = VIP) => lbStatus(i).vips.find((v: { address: string; port: number }) => v.address === vip && v.port === PORT).counters;
const connections = (i: number) => withLbPins(lab.ns.lb[i], (m) => m.lb_conns.count());
const natPorts = (i: number) => withLbPins(lab.ns.lb[i], (m) => m.lb_nat.count());
/** Entries that moved from `before` to `after` while naming a previous backend. */
function unchained(before: Buffer, after: Buffer): number {
  let n = 0;
  for (let at = 0; at < after.length; at += 8) if (after.readUInt16LE(at) !== before.readUInt16LE(at) && before.readUInt16LE(at + 2) !== 0xffff) n++;
  return n;
}
let lastLost = 0; // what the last change of the first part unchained
const broken = (cs: ConnView[]) => cs.filter((c) => c.broken).map((c) => `${c.sport}: ${c.broken}`);
let probePort = 41000;
/** `n` new connections, each checked against balancer 1's table (both hold the same). */
async function probeFollowsTable(n: number): Promise<void> {
  const view = statelessView(lab.ns.lb[0]);
  const got = await client.probe(VIP, PORT, probePort, n);
  probePort += n;
  expect(got.map((r) => [r.sport, r.name, r.error ?? null])).toEqual(got.map((r) => [r.sport, nameOf(view.backendOf(r.sport)!), null]));
}
async function acked(): Promise<Map<number, number>> {
  return new Map((await client.status()).map((c) => [c.sport, c.acked]));
}
/** Every live connection answered more lines than it had at `before`. */
async function allMovedOn(before: Map<number, number>, vip = VIP): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const s = (await client.status()).filter((c) => c.vip === vip);
    if (s.every((c) => c.acked > before.get(c.sport)! + 1)) return;
    await sleep(100);
  }
  const s = (await client.status()).filter((c) => c.vip === vip && !(c.acked > before.get(c.sport)! + 1));
  expect(s).toEqual([]);
}

beforeAll(async () => {
  lab = makeStatelessLab();
  both([b(1), b(2), b(3)]);
  await waitForEcho(lab);
  client = startClient(lab);
  await client.open(VIP, PORT, 40000, LONG);
  await client.http(VIP, HTTP_PORT);
  for (let i = 0; i < 100 && (await client.status()).some((c) => !c.name); i++) await sleep(100);
}, 120_000);

/** HTTP requests so far: all answered, and more than `since`. */
/** Failures of the HTTP requests made throughout, up to a point where
 *  they are reported rather than asserted (a SYN flood at the NAT VIP
 *  takes the machine's two cores). */
let forgiven = { failed: 0, errors: 0 };

async function httpAllOk(since = 0): Promise<number> {
  const s = await client.httpStats();
  expect({ failed: s.failed - forgiven.failed, errors: s.errors.slice(forgiven.errors) }).toEqual({ failed: 0, errors: [] });
  expect(s.ok).toBeGreaterThan(since);
  return s.ok;
}

afterAll(async () => {
  for (const { d, n } of daemons) {
    d.proc.kill('SIGKILL');
    await d.exited;
    n.close();
  }
  lab?.destroy();
});

describe('stateless VIP through two balancers', () => {
  it('keeps every long-lived connection while backends are added, removed and reweighted, one change at a time; new connections follow each table', async () => {
    const start = await client.status();
    expect(start.filter((c) => !c.name)).toEqual([]);
    const view = statelessView(lab.ns.lb[0]);
    // Each connection is on the backend its entry names.
    expect(start.map((c) => [c.sport, c.name])).toEqual(start.map((c) => [c.sport, nameOf(view.backendOf(c.sport)!)]));
    // Each change moves entries no earlier one moved (Maglev's few incidental
    // moves aside): an entry that changes twice within its window keeps
    // only its latest previous backend (the one-change limit, which the
    // apply reports and the kernel tests cover), so its oldest flows would
    // break. The flows' ports are fixed, the tables deterministic: checked below.
    const changes: Array<[string, Backend[]]> = [
      ['adds b4', [b(1), b(2), b(3), b(4)]],
      ['reweights b4 to 3', [b(1), b(2), b(3), b(4, 3)]],
      ['removes b2', [b(1), b(3), b(4, 3)]],
    ];
    const moves = new Map<number, number>();
    let was = view;
    for (const [what, backends] of changes) {
      const before = await acked();
      const out = both(backends);
      // Same config, same sequence: the same table, the same report.
      expect([what, statelessView(lab.ns.lb[1]).slots.equals(statelessView(lab.ns.lb[0]).slots)]).toEqual([what, true]);
      expect([what, out[1].stderr]).toEqual([what, out[0].stderr]);
      const now = statelessView(lab.ns.lb[0]);
      // Entries moved again while their previous change is inside the
      // window (Maglev moves a few besides the ones a change is about):
      // the apply says how many, the status shows it.
      const lost = unchained(was.slots, now.slots);
      const line = `xdp-lb: warning: vip tcp:${VIP}:${PORT}: ${lost} entries changed again within the chaining window: their flows from before the previous change are no longer chained`;
      expect([what, out[0].stderr.split('\n').includes(line)]).toEqual([what, lost > 0]);
      expect([what, lbStatus(0).vips[0].stateless.lost]).toEqual([what, lost]);
      lastLost = lost;
      for (const c of start) if (now.backendOf(c.sport) !== was.backendOf(c.sport)) moves.set(c.sport, (moves.get(c.sport) ?? 0) + 1);
      was = now;
      await allMovedOn(before);
      await probeFollowsTable(30);
      expect([what, broken(await client.status())]).toEqual([what, []]);
    }
    expect([...moves].filter(([, n]) => n > 1)).toEqual([]);
    const moved = moves;
    const chained = lab.ns.b.reduce((n, _, i) => n + decapStats(lab, i).chained, 0);
    console.log(`stateless: ${moved.size} of ${LONG} long-lived connections had their entry move to another backend; ${chained} segments chained by the backends`);
    expect(moved.size).toBeGreaterThan(5);
    expect(chained).toBeGreaterThan(moved.size);
    const s = lbStatus(0).vips[0].stateless;
    expect(s.generation).toBe(4);
    expect(s.chained).toBeGreaterThan(0);
    expect(s.chain_window_s).toBe(300);
    expect(s.evicted).toBe(0);
    const http = await httpAllOk(50);
    console.log(`stateless: ${http} HTTP requests (a new connection each) through the changes, none failed`);
  });

  it('loses no connection when one balancer\'s route is withdrawn and comes back (ECMP)', async () => {
    const ecmp = ['route', 'replace', `${VIP}/32`, 'nexthop', 'via', BALANCERS[0], 'nexthop', 'via', BALANCERS[1]];
    const onlyLb2 = ['route', 'replace', `${VIP}/32`, 'via', BALANCERS[1]];
    const before = await acked();
    execFileSync('ip', ['-n', lab.ns.router, ...onlyLb2]);
    await sleep(300);
    const lb1 = vipCounters(0).packets;
    await allMovedOn(before);
    await probeFollowsTable(20);
    expect(vipCounters(0).packets).toBe(lb1); // nothing reaches balancer 1 now
    const back = await acked();
    execFileSync('ip', ['-n', lab.ns.router, ...ecmp]);
    await allMovedOn(back);
    await probeFollowsTable(20);
    expect(vipCounters(0).packets).toBeGreaterThan(lb1);
    expect(broken(await client.status())).toEqual([]);
    await httpAllOk();
  });

  it('SYN floods: the NAT VIP\'s tables fill, the stateless VIP keeps nothing and loses no connection', async () => {
    await client.open(NAT_VIP, PORT, 43000, 20);
    for (let i = 0; i < 50 && (await client.status()).some((c) => !c.name); i++) await sleep(100);
    const report: string[] = [];
    for (const [kind, vip] of [['NAT', NAT_VIP], ['stateless', VIP]] as const) {
      const before = { conns: [connections(0), connections(1)], nat: natPorts(0), counters: vipCounters(0, vip), http: await client.httpStats() };
      const acks = await acked();
      // hping3 sends SYNs as fast as it can.
      // From random sources, as a flood comes: no one answers the
      // backends' SYN-ACKs, and no SYN takes the 4-tuple of a connection
      // of the client's.
      const flood = spawn('nsenter', [`--net=/run/netns/${lab.ns.client}`, 'timeout', '-s', 'INT', '10', 'hping3', '--flood', '--rand-source', '-S', '-p', String(PORT), vip], { stdio: 'ignore' });
      lab.procs.push(flood);
      const ended = new Promise((r) => flood.on('exit', r));
      await sleep(4000);
      const during = await client.probe(vip, PORT, probePort, 10);
      probePort += 10;
      await ended;
      await sleep(1000);
      const after = await client.probe(vip, PORT, probePort, 10);
      probePort += 10;
      const status = (await client.status()).filter((c) => c.vip === vip);
      const counters = vipCounters(0, vip);
      const http = await client.httpStats();
      const line = {
        kind,
        syns: Number(counters.packets - before.counters.packets),
        established_broken: broken(status).length,
        established: status.length,
        new_during_ok: during.filter((r) => r.name).length,
        new_after_ok: after.filter((r) => r.name).length,
        connection_table: `${before.conns.join('+')} -> ${connections(0)}+${connections(1)}`,
        nat_ports: `${before.nat} -> ${natPorts(0)}`,
        nat_exhausted: Number(counters.nat_exhausted - before.counters.nat_exhausted),
        http_to_stateless_vip: `${http.ok - before.http.ok} ok, ${http.failed - before.http.failed} failed`,
      };
      report.push(JSON.stringify(line));
      expect(line.syns).toBeGreaterThan(10_000);
      if (kind === 'stateless') {
        // Nothing per flow on either balancer, and every connection goes on.
        expect([connections(0), connections(1)]).toEqual(before.conns);
        expect(broken(status)).toEqual([]);
        await allMovedOn(acks);
        expect(after.every((r) => r.name)).toBe(true);
      }
    }
    console.log(`SYN floods (hping3 --flood -S, 10 s each):\n${report.join('\n')}`);
    // New connections during the floods are reported above; after them,
    // every request succeeds again.
    const settled = await client.httpStats();
    forgiven = { failed: settled.failed, errors: settled.errors.length };
    await sleep(2000);
    await httpAllOk(settled.ok);
  }, 90_000);

  it('ends chaining once the window has passed: xdp-lb run swaps in the same tables (echo and HTTP) with no previous backends', async () => {
    await client.end();
    const dir = lab.dir;
    const file = join(dir, 'xdplb.json');
    writeFileSync(file, JSON.stringify({
      interfaces: [lab.ifs.lb[1]], mode: 'native', metrics: { listen: '127.0.0.1:9624' },
      lb: { enabled: true, ...config(1, [b(1), b(3), b(4, 3)], { chain_window_s: 2 }) },
    }));
    expect(lbStatus(1).vips[0].stateless.chained).toBeGreaterThan(0);
    for (const command of ['xdp-root', 'xdp-lb']) {
      const n = new NotifySocket();
      await n.start();
      const d = startDaemon([...netnsWithSys(lab.ns.lb[1]), BIN(command), 'run', '--config', file], { NOTIFY_SOCKET: n.path });
      daemons.push({ d, n });
      await n.waitFor(/^READY=1$/).catch((err) => {
        throw new Error(`${command} run: ${err.message}; its stderr: ${d.stderr.join(' | ')}`);
      });
    }
    const lb = daemons[1].d;
    for (let i = 0; i < 50 && lbStatus(1).vips[0].stateless.chained > 0; i++) await sleep(100);
    expect(lbStatus(1).vips[0].stateless).toEqual({ generation: 4, chain_window_s: 2, chained: 0, lost: lastLost, evicted: 0 });
    expect(lb.stderr).toContainEqual(expect.stringMatching(/^xdp-lb: lb: chaining ended in 2 table\(s\): their window has passed$/));
    // The same on the service's metrics endpoint.
    const metrics = execFileSync('nsenter', [`--net=/run/netns/${lab.ns.lb[1]}`, 'curl', '-sf', 'http://127.0.0.1:9624/metrics'], { encoding: 'utf8' }).split('\n');
    const vip = `tcp:${VIP}:${PORT}`;
    for (const line of [
      `xdplb_lb_vip_chained_entries{vip="${vip}"} 0`, `xdplb_lb_vip_generation{vip="${vip}"} 4`,
      `xdplb_lb_vip_unchained_entries{vip="${vip}",reason="lost"} ${lastLost}`, `xdplb_lb_vip_unchained_entries{vip="${vip}",reason="evicted"} 0`,
    ]) expect(metrics).toContain(line);
  });

  it('says, in the apply and the status, when a change moves entries whose previous change is still inside the window', () => {
    // Balancer 1 holds b1, b3, b4 (weight 3), its last three changes inside
    // the window: b2 back moves entries again.
    const before = statelessView(lab.ns.lb[0]).slots;
    const { stderr } = applyIn(lab, 0, config(0, [b(1), b(2), b(3), b(4, 3)]));
    const lost = unchained(before, statelessView(lab.ns.lb[0]).slots);
    // Most of what b2 had, moved when it left, moves back.
    expect(lost).toBeGreaterThan(5000);
    const line = `xdp-lb: warning: vip tcp:${VIP}:${PORT}: ${lost} entries changed again within the chaining window: their flows from before the previous change are no longer chained`;
    expect(stderr.split('\n')).toContain(line);
    expect(lbStatus(0).vips[0].stateless).toMatchObject({ generation: 5, lost, evicted: 0 });
    const text = execFileSync('nsenter', [`--net=/run/netns/${lab.ns.lb[0]}`, BIN('xdp-lb'), '--status'], { encoding: 'utf8' });
    expect(text).toContain(`stateless: ${lbStatus(0).vips[0].stateless.chained} chained, generation 5, its last change unchained ${lost} entries inside their window`);
  });
});
