// `xdp-lb run` announcing its VIPs through a real BIRD, in the fleet lab
// (test/helpers/fleet.ts: a router and two balancers, each with its own BIRD
// running the shipped example config; DSR backends running http.server).
// Witnesses: the router's kernel table (`ip -j route`), the balancers'
// include files, `xdp-lb --status`, the services' logs and STATUS lines.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setNetns } from '../../src/sys/netns.js';
import { afterEach, expect, it } from 'vitest';
import { makeFleet, type Fleet } from '../helpers/fleet.js';
import { ENCAP4, ENCAP6, FleetServices, balancerSysctls, type Running } from '../helpers/fleetsvc.js';
import { inNs } from '../helpers/lblab.js';
import { RootArray } from '../../src/root/array.js';
import { ifPinDir } from '../helpers/netns.js';
import { promtoolCheckMetrics, startPrometheus } from '../helpers/prometheus.js';
import { spawnSync } from 'node:child_process';

let fleet: Fleet | undefined;
let svc: FleetServices | undefined;
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await svc?.close();
  svc = undefined;
  fleet?.destroy();
  fleet = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Switch this thread into `ns` (sockets made from now on live there); returns the way back. */
function enter(ns: string): () => Promise<void> {
  const back = openSync('/proc/self/ns/net', 'r');
  const fd = openSync(`/run/netns/${ns}`, 'r');
  try {
    setNetns(fd);
  } finally {
    closeSync(fd);
  }
  return async () => {
    try {
      setNetns(back);
    } finally {
      closeSync(back);
    }
  };
}
// `bird --version` answers on stderr.
const BIRD_VERSION = /BIRD version (\S+)/.exec(spawnSync('bird', ['--version'], { encoding: 'utf8' }).stderr)?.[1];

it('announces a VIP while its balancer serves it and a backend is healthy, withdraws before leaving, keeps it over a kill, survives BIRD going away', async () => {
  fleet = await makeFleet({ balancers: 2, backends: 2 });
  const f = fleet;
  svc = new FleetServices(f);
  const s = svc;
  const [b1, b2] = f.balancers;
  const health = { type: 'http', path: '/who', interval_ms: 300, timeout_ms: 250, rise: 2, fall: 3 };
  const lb = {
    vips: [
      { address: f.vip4, port: 8000, forwarding: 'gue', encap_source_ipv4: ENCAP4, health, backends: f.backends.map((x) => ({ address: x.addr4 })) },
      { address: f.vip6, port: 8000, forwarding: 'ipip', encap_source_ipv6: ENCAP6, health, backends: f.backends.map((x) => ({ address: x.addr6 })) },
    ],
  };
  for (const b of f.balancers) {
    balancerSysctls(b);
    s.writeConfig(b, lb, b === b1 ? '127.0.0.1:9624' : undefined);
  }
  await s.startBackends([f.vip4, f.vip6]);
  await f.waitEstablished();
  const services = new Map<string, { root: Running; lb: Running }>();
  for (const b of f.balancers) services.set(b.name, { root: await s.start(b, 'xdp-root'), lb: await s.start(b, 'xdp-lb') });
  const both = async (bs = [b1, b2]) => {
    await f.waitNexthops(f.vip4, bs.map((b) => b.front4));
    await f.waitNexthops(f.vip6, bs.map((b) => b.front6));
  };
  await both();
  const get = (vip: string, i: number) => inNs(f.client.ns, 'curl', ['-s', '--max-time', '3', '--interface',
    vip.includes(':') ? f.client.addrs6[i % 3] : f.client.addrs4[i % 3], `http://${vip.includes(':') ? `[${vip}]` : vip}:8000/who`]);
  const answers = new Set(Array.from({ length: 10 }, (_, i) => get(f.vip4, i)));
  expect(answers).toEqual(new Set(['s1', 's2']));
  expect(get(f.vip6, 0)).toMatch(/^s[12]$/);

  const st = s.status(b1);
  expect(st.vips.map((v: any) => [v.announced, v.healthy])).toEqual([[true, 2], [true, 2]]);
  expect(st.bgp).toMatchObject({ reachable: true, error: null, wanted: [`${f.vip4}/32`, `${f.vip6}/128`], accepted: [`${f.vip4}/32`, `${f.vip6}/128`] });
  expect(st.bgp.sessions).toEqual([expect.objectContaining({ name: 'router1', state: 'up', established: true, neighbor: f.router.front4 })]);
  expect(readFileSync(b1.includeFile, 'utf8')).toContain(`\troute ${f.vip4}/32 blackhole;\n`);
  const text = s.cli(b1, 'xdp-lb', ['--status']);
  expect(text).toMatch(/│ tcp:10\.4\.0\.10:8000 +│ gue, table 65537 +│ 2\/2 healthy, announced │/);
  expect(text).toContain(`BGP: BIRD ${BIRD_VERSION} at ${b1.birdSocket} announces ${f.vip4}/32, ${f.vip6}/128 (${b1.includeFile})`);
  expect(text).toMatch(new RegExp(`\n  session router1: up, Established since \\S+, neighbor ${f.router.front4.replace(/\./g, '\\.')}`));
  const { lb: lb1, root: root1 } = services.get('b1')!;
  const { lb: lb2 } = services.get('b2')!;
  const logged = async (r: Running, line: string, from = 0) => {
    for (let i = 0; i < 200 && !r.d.stderr.slice(from).includes(line); i++) await sleep(50);
    expect(r.d.stderr.slice(from)).toContain(line);
  };
  expect(lb1.d.stderr).toContain(`xdp-lb: lb: BGP: announcing ${f.vip4}/32 (tcp:${f.vip4}:8000: 2 of 2 backends healthy)`);

  // Prometheus scrapes b1's root service: the balancer's health and
  // announcements. Its API is on b1's loopback: this thread goes there.
  cleanup.push(enter(b1.ns));
  const prom = await startPrometheus({ targets: ['127.0.0.1:9624'], netns: b1.ns });
  cleanup.push(() => prom.stop());
  await prom.waitForScrapes(2);
  const q = async (promql: string) => Object.fromEntries((await prom.query(promql)).map((x) => [JSON.stringify(x.metric), x.value]));

  await lb1.n.waitFor(new RegExp(`^STATUS=${b1.frontIf}: 2 VIPs, 4 backends, \\d+/\\d+ connections, 0 of 4 checked backends down, 2 of 2 VIPs announced$`));

  // Every backend dies: each VIP is withdrawn by both balancers.
  let mark = lb1.d.stderr.length;
  const notes1 = lb1.n.lines.length;
  for (const x of f.backends) await s.killServer(x);
  await both([]);
  await logged(lb1, `xdp-lb: lb: BGP: withdrawing ${f.vip4}/32 (tcp:${f.vip4}:8000 has no healthy backend)`, mark);
  // The STATUS line follows on its own, between reloads and repairs.
  await lb1.n.waitFor(/, 4 of 4 checked backends down, 0 of 2 VIPs announced$/, notes1);
  expect(s.status(b2).vips.map((v: any) => [v.announced, v.healthy, v.announcement])).toEqual([
    [false, 0, 'not announced: no backend takes new flows'], [false, 0, 'not announced: no backend takes new flows']]);
  await prom.waitForScrapes(2);
  expect(await q('xdplb_lb_vip_announced')).toEqual({
    [JSON.stringify({ __name__: 'xdplb_lb_vip_announced', instance: '127.0.0.1:9624', job: 'xdplb', vip: `tcp:${f.vip4}:8000` })]: '0',
    [JSON.stringify({ __name__: 'xdplb_lb_vip_announced', instance: '127.0.0.1:9624', job: 'xdplb', vip: `tcp:[${f.vip6}]:8000` })]: '0',
  });
  expect(Object.values(await q('xdplb_lb_backend_up'))).toEqual(['0', '0', '0', '0']);
  expect(Object.values(await q('xdplb_lb_backend_health{state="down"}'))).toEqual(['1', '1', '1', '1']);
  expect(Object.values(await q('xdplb_lb_vip_healthy_backends'))).toEqual(['0', '0']);
  expect(await q('xdplb_lb_bird_up')).toEqual({ [JSON.stringify({ __name__: 'xdplb_lb_bird_up', instance: '127.0.0.1:9624', job: 'xdplb' })]: '1' });
  expect(Object.values(await q('xdplb_lb_bgp_session_up{peer="router1"}'))).toEqual(['1']);
  expect(Object.values(await q('xdplb_lb_service_running'))).toEqual(['1']);
  // One back: announced again by both.
  mark = lb1.d.stderr.length;
  s.startServer(f.backends[0]);
  await both();
  await logged(lb1, `xdp-lb: lb: BGP: announcing ${f.vip4}/32 (tcp:${f.vip4}:8000: 1 of 2 backends healthy)`, mark);
  await prom.waitForScrapes(2);
  expect(Object.values(await q('xdplb_lb_vip_announced'))).toEqual(['1', '1']);
  expect(Object.values(await q('xdplb_lb_vip_healthy_backends'))).toEqual(['1', '1']);
  const body = inNs(b1.ns, 'curl', ['-s', 'http://127.0.0.1:9624/metrics']);
  expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });
  s.startServer(f.backends[1]);

  // A stop as systemd's: withdrawn while b1 still holds its slot, then out of it.
  mark = lb1.d.stderr.length;
  // Read from the pins, not by a command: a command's start-up can take
  // as long as the wait on this busy machine.
  const rootDir = ifPinDir(b1.ns, b1.frontIf);
  const slot7 = () => {
    const root = RootArray.openPinned(rootDir);
    try {
      return !!root?.slotIds()[7];
    } finally {
      root?.close();
    }
  };
  expect(slot7()).toBe(true);
  const stopped = s.stop(lb1);
  await both([b2]);
  expect(slot7()).toBe(true);
  expect(lb1.d.proc.exitCode).toBe(null);
  expect(await stopped).toBe(0);
  expect(slot7()).toBe(false);
  expect(lb1.d.stderr.slice(mark)).toEqual([
    `xdp-lb: lb: BGP: withdrew every VIP (${b1.includeFile} is empty)`,
    'xdp-lb: lb: BGP: serving 1000 ms more while the routers move the flows away',
    'xdp-lb: stopped on SIGTERM',
  ]);
  expect(s.status(b1).service).toBe(null);
  let lb1b = await s.start(b1, 'xdp-lb');
  await both();

  // Killed: the announcement stays; started again: it never left.
  await s.kill(lb1b);
  const seen = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      seen.add(JSON.stringify([f.routeNexthops(f.vip4), f.routeNexthops(f.vip6)]));
      await sleep(20);
    }
  })();
  await sleep(1000);
  lb1b = await s.start(b1, 'xdp-lb');
  await sleep(3000);
  watching = false;
  await watcher;
  // b1's nexthops never left (b2's are another balancer's business: a busy
  // machine can make its BFD miss a beat).
  expect([...seen].filter((x) => { const [v4, v6] = JSON.parse(x); return !v4.includes(b1.front4) || !v6.includes(b1.front6); })).toEqual([]);
  expect(seen.size).toBeGreaterThan(0);

  // b2's BIRD stops: degraded, said once, and BIRD is told again once back.
  mark = lb2.d.stderr.length;
  const notes = lb2.n.lines.length;
  await f.stopBird(b2);
  await both([b1]);
  const gone = `BGP: BIRD control socket ${b2.birdSocket}: no such socket (is BIRD running?)`;
  expect(await lb2.n.waitFor(/^STATUS=degraded/, notes)).toMatch(new RegExp(`^STATUS=degraded: ${gone.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; `));
  await logged(lb2, `xdp-lb: degraded: ${gone}`, mark);
  expect(s.status(b2).bgp).toMatchObject({ reachable: false, error: gone.slice('BGP: '.length) });
  expect(s.status(b2).vips.map((v: any) => v.announced)).toEqual([false, false]);
  await f.startBird(b2);
  await both();
  await logged(lb2, `xdp-lb: lb: BGP: BIRD ${BIRD_VERSION} at ${b2.birdSocket} answers again`, mark);
  expect(await lb2.n.waitFor(/^STATUS=(?!degraded)/, notes)).toMatch(/announced$/);
  expect(lb2.d.stderr.slice(mark).filter((l) => /degraded/.test(l))).toHaveLength(1);

  // b1's root array taken away under a running balancer: withdrawn until it is back.
  mark = lb1b.d.stderr.length;
  expect(await s.stop(root1)).toBe(0);
  await both([b2]);
  await logged(lb1b, `xdp-lb: lb: BGP: withdrawing ${f.vip4}/32 (the balancer is not in its slot on every interface)`, mark);
  await s.start(b1, 'xdp-root');
  await both();
}, 300_000);
