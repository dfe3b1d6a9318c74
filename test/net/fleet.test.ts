// The fleet lab: clients behind a router; the router and three balancers
// each running BIRD, peering over BGP with BFD; the router's ECMP route per
// VIP over the balancers announcing it; three backends running unmodified
// `python3 -m http.server` with the VIPs on `lo` and the decapsulator in
// their root arrays (test/helpers/fleet.ts, fleetsvc.ts). Each balancer runs
// `xdp-root run` and `xdp-lb run` with the same `lb` section: a stateless
// GUE VIP (IPv4, VIP4_FORWARDING) and, for comparison, an IPIP VIP (IPv6)
// with the connection table, both with HTTP health checks and `bgp`.
//
// What it proves, with the numbers it prints: every balancer carries
// traffic; a balancer stopped as systemd stops it (and brought back) fails
// no request and breaks no long-lived connection; one cut off (its link
// down) costs the requests hashed to it a SYN retransmission only while BFD
// notices, fails none and breaks no long-lived connection; a backend whose
// server dies fails new requests only until its checks take it out, and is
// back once its server is.
//
// A stateless VIP's flow that ECMP moves to another balancer keeps its
// backend because every balancer builds the same table from the same
// config; an entry that health changed names its previous backend, to which
// the new one's decapsulator sends on what it has no socket for.
import { execFileSync } from 'node:child_process';
import { afterEach, expect, it } from 'vitest';
import { makeFleet, type Fleet, type FleetBackend, type FleetBalancer } from '../helpers/fleet.js';
import { BIN } from '../helpers/cli.js';
import { ENCAP4, ENCAP6, FleetServices, balancerSysctls, noUnicastFlood, type Running } from '../helpers/fleetsvc.js';
import { holdConnections, requests, type RequestRecord } from '../helpers/fleetload.js';

let fleet: Fleet | undefined;
let svc: FleetServices | undefined;
const cleanup: Array<() => void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) c();
  await svc?.close();
  svc = undefined;
  fleet?.destroy();
  fleet = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Took a retransmission (TCP's first waits 1 s for a SYN) or failed. */
const hurt = (r: RequestRecord) => !r.who || r.end - r.start > 900;
const INTERVAL = 500;
const FALL = 3;
const RISE = 2;
/** How the IPv4 VIP forwards: GUE, stateless (no connection table: each packet by its table entry). */
const VIP4_FORWARDING = { forwarding: 'gue', stateless: true };

it('carries traffic on every balancer, and keeps requests and connections through stops, cuts and a dead backend', async () => {
  const t0 = Date.now();
  fleet = await makeFleet({ balancers: 3, backends: 3 });
  const f = fleet;
  svc = new FleetServices(f);
  const s = svc;
  const [b1, b2, b3] = f.balancers;
  const health = { type: 'http', path: '/who', interval_ms: INTERVAL, timeout_ms: 400, rise: RISE, fall: FALL };
  const lb = {
    vips: [
      { address: f.vip4, port: 8000, ...VIP4_FORWARDING, encap_source_ipv4: ENCAP4, health, backends: f.backends.map((x) => ({ address: x.addr4 })) },
      { address: f.vip6, port: 8000, forwarding: 'ipip', encap_source_ipv6: ENCAP6, health, backends: f.backends.map((x) => ({ address: x.addr6 })) },
    ],
  };
  noUnicastFlood(f);
  for (const b of f.balancers) {
    balancerSysctls(b);
    s.writeConfig(b, lb);
  }
  await s.startBackends([f.vip4, f.vip6]);
  await f.waitEstablished();
  const daemons = new Map<string, { root: Running; lb: Running }>();
  const up = async (b: FleetBalancer) => daemons.set(b.name, { root: await s.start(b, 'xdp-root'), lb: await s.start(b, 'xdp-lb') });
  for (const b of f.balancers) await up(b);
  const nexthops = (bs: FleetBalancer[]) => Promise.all([
    f.waitNexthops(f.vip4, bs.map((b) => b.front4), 15_000),
    f.waitNexthops(f.vip6, bs.map((b) => b.front6), 15_000),
  ]);
  await nexthops(f.balancers);
  const lbLog = (b: FleetBalancer) => daemons.get(b.name)!.lb.d.stderr;
  /** Where each balancer's log ends now. */
  const mark = () => Object.fromEntries(f.balancers.map((b) => [b.name, lbLog(b).length]));
  /** When `line` is in each balancer's log (past `from`), in ms after `since` (polled every 20 ms). */
  const logged = async (line: string, since: number, from: Record<string, number> = {}): Promise<Record<string, number>> => {
    const at: Record<string, number> = {};
    while (Object.keys(at).length < f.balancers.length && Date.now() - since < 15_000) {
      for (const b of f.balancers) if (!(b.name in at) && lbLog(b).slice(from[b.name] ?? 0).includes(line)) at[b.name] = Date.now() - since;
      await sleep(20);
    }
    expect([Object.keys(at).sort(), line]).toEqual([f.balancers.map((b) => b.name), line]);
    return at;
  };
  const healthy = () => f.balancers.every((b) => s.status(b).vips.every((v: { backends: Array<{ health: string }> }) => v.backends.every((x) => x.health === 'up')));
  for (let i = 0; i < 100 && !healthy(); i++) await sleep(200);
  expect(healthy()).toBe(true);
  console.log(`fleet up in ${Date.now() - t0} ms`);

  const url4 = `http://${f.vip4}:8000/who`;
  // python's http.server listens with a backlog of 5: a SYN (or the
  // handshake's last ACK) that finds its accept queue full is dropped
  // (TcpExt ListenDrops, which counts ListenOverflows and the listener's
  // other drops) and the client sends it again after a second. Such delays
  // are the backends' own, and counted, so that what the balancers cost is
  // told apart from them.
  const listenDrops = () => f.backends.reduce((n, x) => {
    const lines = execFileSync('nsenter', [`--net=/run/netns/${x.ns}`, 'cat', '/proc/net/netstat'], { encoding: 'utf8' }).split('\n');
    const [names, values] = lines.filter((l) => l.startsWith('TcpExt:')).map((l) => l.split(' '));
    return n + Number(values[names.indexOf('ListenDrops')]);
  }, 0);
  const decapChained = (x: FleetBackend) => {
    const out = execFileSync('nsenter', [`--net=/run/netns/${x.ns}`, BIN('xdp-decap'), '--status', '--json'], { encoding: 'utf8' });
    return Number(JSON.parse(out)[x.ifname].stats.chained);
  };
  const packets = () => f.balancers.map((b) => Number(s.status(b).vips[0].counters.packets));
  const failed = (rs: RequestRecord[]) => rs.filter((r) => !r.who);
  const held = await holdConnections(f.client.ns, { host: f.vip4, port: 8000, locals: f.client.addrs4, n: 60, everyMs: 300, timeoutMs: 10_000 });
  cleanup.push(() => held.kill());

  // Every balancer carries traffic: 1200 requests, none failed.
  const before = packets();
  const steady = await requests(f.client.ns, { url: url4, locals: f.client.addrs4, count: 1200, concurrency: 8 });
  const grown = packets().map((p, i) => p - before[i]);
  expect(failed(steady)).toEqual([]);
  expect(steady).toHaveLength(1200);
  for (const g of grown) expect(g).toBeGreaterThan(1000);
  const byBackend = (rs: RequestRecord[]) => Object.fromEntries(f.backends.map((x) => [x.name, rs.filter((r) => r.who === x.name).length]));
  expect(Object.values(byBackend(steady)).every((n) => n > 200)).toBe(true);
  const six = await requests(f.client.ns, { url: `http://[${f.vip6}]:8000/who`, locals: f.client.addrs6, count: 60, concurrency: 4 });
  expect(failed(six)).toEqual([]);
  console.log(`steady: 1200 requests, 0 failed; packets per balancer ${grown.join(' / ')}; answers per backend ${JSON.stringify(byBackend(steady))}; IPv6 60 of 60`);

  // b2 stopped as systemd stops xdplb-root (its balancer first), then back.
  const o1 = listenDrops();
  const during = requests(f.client.ns, { url: url4, locals: f.client.addrs4, ms: 14_000, concurrency: 8 });
  await sleep(1500);
  const d2 = daemons.get('b2')!;
  const tStop = Date.now();
  const lbStopped = s.stop(d2.lb).then((code) => ({ code, ms: Date.now() - tStop }));
  // The announcement goes first; the data plane serves on while the router moves the flows.
  const withdrawnMs = await f.waitNexthops(f.vip4, [b1.front4, b3.front4], 10_000);
  const lbExit = await lbStopped;
  expect(lbExit.code).toBe(0);
  expect(withdrawnMs).toBeLessThan(lbExit.ms);
  expect(d2.lb.d.stderr).toContain('xdp-lb: lb: BGP: serving 1000 ms more while the routers move the flows away');
  expect(await s.stop(d2.root)).toBe(0);
  const stopMs = Date.now() - tStop;
  await nexthops([b1, b3]);
  await sleep(3000);
  const quiet = packets()[1];
  await sleep(1000);
  expect(packets()[1]).toBe(quiet);
  const tBack = Date.now();
  await up(b2);
  await nexthops(f.balancers);
  const backMs = Date.now() - tBack;
  const afterBack = packets()[1];
  const rs = await during;
  const o2 = listenDrops();
  expect(packets()[1]).toBeGreaterThan(afterBack);
  expect(failed(rs)).toEqual([]);
  // Every delayed request is one whose packet a backend's full accept queue dropped.
  expect(rs.filter(hurt).length).toBeLessThanOrEqual(o2 - o1);
  console.log(`b2 stopped (SIGTERM xdp-lb run, then xdp-root run): withdrawn from the router after ${withdrawnMs.toFixed(0)} ms, xdp-lb out after ${lbExit.ms} ms, ` +
    `both in ${stopMs} ms; back in ${backMs} ms: ${rs.length} requests, 0 failed; ` +
    `${rs.filter(hurt).length} waited for a retransmission, no more than the backends' listen drops (${o2 - o1})`);

  // b3 cut off: its front link down; BFD takes it out of the route.
  const o3 = listenDrops();
  const cutLoad = requests(f.client.ns, { url: url4, locals: f.client.addrs4, ms: 8000, concurrency: 8 });
  await sleep(1500);
  const tCut = Date.now();
  f.linkDown(b3);
  const detectMs = await f.waitNexthops(f.vip4, [b1.front4, b2.front4], 10_000);
  await sleep(2500);
  f.linkUp(b3);
  const tUp = Date.now();
  await nexthops(f.balancers);
  const rejoinMs = Date.now() - tUp;
  const cut = await cutLoad;
  const o4 = listenDrops();
  // Requests under way while b3 was dead but still in the route, and
  // hashed to it, lost a packet (a SYN, or the request after a SYN that
  // b3 forwarded just before) and sent it again, to a live one.
  const inWindow = cut.filter((r) => r.start <= tCut + detectMs && r.end >= tCut);
  const hit = inWindow.filter(hurt);
  const lastHit = hit.length ? Math.max(...hit.map((r) => r.start)) - tCut : 0;
  const elsewhere = cut.filter((r) => hurt(r) && !hit.includes(r));
  console.log(`b3 cut: its nexthop gone from the router after ${detectMs.toFixed(0)} ms (BFD); ${hit.length} of the ${inWindow.length} requests under way meanwhile ` +
    `waited for a retransmission (the last started ${lastHit} ms after the cut), none failed; ${elsewhere.length} others waited (the backends' listen drops: ` +
    `${o4 - o3}); b3 back in the route ${rejoinMs} ms after its link came up`);
  expect(failed(cut)).toEqual([]);
  expect(detectMs).toBeLessThan(1000);
  expect(hit.length).toBeGreaterThan(0);

  // The long-lived connections lived through all of it, each on one backend.
  const h = await held.stop();
  expect(h.connections).toBe(60);
  expect(h.broken).toEqual([]);
  expect(h.backends.filter((bs) => bs.length !== 1)).toEqual([]);
  console.log(`60 long-lived connections: ${h.exchanges} exchanges, 0 broken, each on one backend; the longest wait for an answer ${h.maxWaitMs} ms`);

  // A backend's server dies: new requests fail only until its checks take it out.
  const s1 = f.backends[0];
  const deadLoad = requests(f.client.ns, { url: url4, locals: f.client.addrs4, ms: 6000, concurrency: 8 });
  await sleep(1000);
  const tKill = Date.now();
  await s.killServer(s1);
  // When each balancer found it down (the log line), and had drained it
  // (the apply logs its change once the new table is in).
  const detected = await logged(`xdp-lb: lb: ${s1.addr4}:8000 down: connect ECONNREFUSED (${FALL} of ${FALL}); tcp:${f.vip4}:8000 has 2 of 3 backends healthy`, tKill);
  const downAt = await logged(`xdp-lb: lb: vip tcp:${f.vip4}:8000 backend ${s1.addr4}:8000 weight 1 -> 0`, tKill);
  const outMs = Math.max(...Object.values(downAt));
  const dead = await deadLoad;
  const lost = failed(dead);
  const after = dead.filter((r) => r.start > tKill + outMs);
  console.log(`s1 killed: found down after ${JSON.stringify(detected)} ms (fall x interval = ${FALL * INTERVAL} ms), out of rotation after ${JSON.stringify(downAt)} ms; ` +
    `${lost.length} of ${dead.length} requests failed, all started before (the last ${lost.length ? Math.max(...lost.map((r) => r.start)) - tKill : '-'} ms after the kill); ` +
    `${after.length} started after, 0 failed`);
  // The third failed check comes within fall x interval of the kill, and
  // the fourth would come an interval later; the apply follows at once
  // (later on a loaded machine: the table is rebuilt and written).
  for (const ms of Object.values(detected)) expect(ms).toBeLessThan((FALL + 1) * INTERVAL);
  expect(outMs).toBeLessThan((FALL + 1) * INTERVAL + 1000);
  expect(failed(after)).toEqual([]);
  expect(after.filter((r) => r.who === 's1')).toEqual([]);
  expect(after.length).toBeGreaterThan(1000);
  // --status says so on every balancer: the backend down since the kill, the VIP still announced.
  for (const b of f.balancers) {
    const v = s.status(b).vips[0];
    expect(v.backends[0]).toMatchObject({ weight: 0, health: 'down', last_error: 'connect ECONNREFUSED' });
    expect(Date.parse(v.backends[0].since)).toBeGreaterThanOrEqual(tKill);
    expect(v).toMatchObject({ healthy: 2, announced: true });
  }
  // Connections opened while s1 is out: the ones whose entries go back to
  // s1 with it live on through chaining (s1's decapsulator sends their
  // packets on to the backend that holds them).
  const heldDown = await holdConnections(f.client.ns, { host: f.vip4, port: 8000, locals: f.client.addrs4, n: 60, everyMs: 300, timeoutMs: 10_000 });
  cleanup.push(() => heldDown.kill());
  const chainedBefore = decapChained(s1);
  // Back: up after rise checks, and serving.
  const restartMark = mark();
  s.startServer(s1);
  await s.serving(s1);
  const tServing = Date.now();
  const upAt = await logged(`xdp-lb: lb: vip tcp:${f.vip4}:8000 backend ${s1.addr4}:8000 weight 0 -> 1`, tServing, restartMark);
  await logged(`xdp-lb: lb: ${s1.addr4}:8000 up (${RISE} of ${RISE}); tcp:${f.vip4}:8000 has 3 of 3 backends healthy`, tServing, restartMark);
  // rise checks, the first within an interval of the server's return.
  for (const ms of Object.values(upAt)) expect(ms).toBeLessThan((RISE + 1) * INTERVAL + 1000);
  expect(healthy()).toBe(true);
  for (const b of f.balancers) expect(s.status(b).vips[0]).toMatchObject({ healthy: 3, announced: true });
  const again = await requests(f.client.ns, { url: url4, locals: f.client.addrs4, count: 300, concurrency: 8 });
  expect(failed(again)).toEqual([]);
  expect(byBackend(again).s1).toBeGreaterThan(30);
  const hd = await heldDown.stop();
  const chained = decapChained(s1) - chainedBefore;
  expect(hd.connections).toBe(60);
  expect(hd.broken).toEqual([]);
  expect(hd.backends.filter((bs) => bs.length !== 1 || bs[0] === 's1')).toEqual([]);
  expect(chained).toBeGreaterThan(0);
  console.log(`s1 restarted: back in rotation ${JSON.stringify(upAt)} ms after it answered again (rise x interval = ${RISE * INTERVAL} ms), then ${byBackend(again).s1} of 300 answers, 0 failed; ` +
    `60 connections opened while it was out: 0 broken, none moved, ${chained} of their packets chained on by s1's decapsulator`);
  console.log(`fleet lab done in ${Date.now() - t0} ms`);
}, 300_000);
