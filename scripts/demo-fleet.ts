// The fleet demo (make demo-fleet): the test's fleet lab (test/helpers/fleet.ts)
// with xdplb running on three balancers, each announcing the VIPs through
// its own BIRD to a router that spreads clients over them (ECMP); three
// backends run `python3 -m http.server` behind them with the decapsulator.
// It narrates what an operator would look at: the router's route, the
// balancers' status, which backend answers, and what a stopped balancer, a
// dead backend and a cut link do. Everything is removed at the end, also
// after a failure or Ctrl-C.
import { execFileSync } from 'node:child_process';
import { makeFleet, type Fleet, type FleetBalancer } from '../test/helpers/fleet.js';
import { ENCAP4, ENCAP6, FleetServices, balancerSysctls, noUnicastFlood, type Running } from '../test/helpers/fleetsvc.js';
import { requests } from '../test/helpers/fleetload.js';

const say = (text: string) => process.stdout.write(`\n== ${text}\n`);
const show = (cmd: string, out: string) => process.stdout.write(`+ ${cmd}\n${out.replace(/\n?$/, '\n')}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let fleet: Fleet | undefined;
let svc: FleetServices | undefined;
async function cleanup(): Promise<void> {
  await svc?.close();
  svc = undefined;
  fleet?.destroy();
  fleet = undefined;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

async function main(): Promise<void> {
  say('Lab: client -- router ==ECMP== balancers b1, b2, b3 (xdplb + BIRD each) -- backends s1, s2, s3 (http.server)');
  fleet = await makeFleet({ balancers: 3, backends: 3 });
  const f = fleet;
  svc = new FleetServices(f);
  const s = svc;
  const [b1, b2, b3] = f.balancers;
  const health = { type: 'http', path: '/who', interval_ms: 500, timeout_ms: 400, rise: 2, fall: 3 };
  const lb = {
    vips: [
      { address: f.vip4, port: 8000, forwarding: 'gue', stateless: true, encap_source_ipv4: ENCAP4, health, backends: f.backends.map((x) => ({ address: x.addr4 })) },
      { address: f.vip6, port: 8000, forwarding: 'ipip', encap_source_ipv6: ENCAP6, health, backends: f.backends.map((x) => ({ address: x.addr6 })) },
    ],
  };
  noUnicastFlood(f);
  for (const b of f.balancers) {
    balancerSysctls(b);
    s.writeConfig(b, lb);
  }
  process.stdout.write(`The "lb" section every balancer runs (its "bgp" names its own BIRD):\n${JSON.stringify(lb, null, 1)}\n`);
  await s.startBackends([f.vip4, f.vip6]);
  await f.waitEstablished();
  const daemons = new Map<string, { root: Running; lb: Running }>();
  const up = async (b: FleetBalancer) => daemons.set(b.name, { root: await s.start(b, 'xdp-root'), lb: await s.start(b, 'xdp-lb') });
  for (const b of f.balancers) {
    process.stdout.write(`+ ${b.name}: xdp-root run, xdp-lb run\n`);
    await up(b);
  }
  await f.waitNexthops(f.vip4, f.balancers.map((b) => b.front4), 20_000);

  say('The router installed one route for the VIP, a nexthop per balancer announcing it');
  show(`ip route show ${f.vip4} (on the router)`, execFileSync('ip', ['-n', f.router.ns, 'route', 'show', f.vip4], { encoding: 'utf8' }));
  show('birdc show protocols (on the router)', execFileSync('birdc', ['-s', f.router.birdSocket, 'show', 'protocols'], { encoding: 'utf8' }));
  await sleep(1500);

  const spread = async (what: string) => {
    const before = f.balancers.map((b) => Number(s.status(b).vips[0].counters.packets));
    const rs = await requests(f.client.ns, { url: `http://${f.vip4}:8000/who`, locals: f.client.addrs4, count: 300, concurrency: 6 });
    const by = Object.fromEntries(f.backends.map((x) => [x.name, rs.filter((r) => r.who === x.name).length]));
    const grew = f.balancers.map((b, i) => `${b.name} +${Number(s.status(b).vips[0].counters.packets) - before[i]}`);
    process.stdout.write(`${what}: 300 requests, ${rs.filter((r) => !r.who).length} failed; answered by ${JSON.stringify(by)}; packets through ${grew.join(', ')}\n`);
  };
  say('300 requests to the VIP: every balancer carries some, every backend answers some');
  await spread('steady');
  show(`xdp-lb --status (on ${b1.name})`, s.cli(b1, 'xdp-lb', ['--status']));

  say(`Stop ${b2.name} as systemd does (SIGTERM to xdp-lb run, then xdp-root run): it withdraws, serves 1 s more, leaves`);
  const d2 = daemons.get('b2')!;
  await s.stop(d2.lb);
  await s.stop(d2.root);
  process.stdout.write(d2.lb.d.stderr.slice(-4).map((l) => `   ${l}\n`).join(''));
  show(`ip route show ${f.vip4} (on the router)`, execFileSync('ip', ['-n', f.router.ns, 'route', 'show', f.vip4], { encoding: 'utf8' }));
  await spread(`without ${b2.name}`);
  await up(b2);
  await f.waitNexthops(f.vip4, f.balancers.map((b) => b.front4), 20_000);
  await spread(`${b2.name} back`);

  const s1 = f.backends[0];
  /** Until every balancer has logged the apply that gives s1 `weight`; then what each logged of it. */
  const marks = () => f.balancers.map((b) => daemons.get(b.name)!.lb.d.stderr.length);
  const s1Weight = async (weight: 0 | 1, since: number, from: number[]) => {
    const line = `vip tcp:${f.vip4}:8000 backend ${s1.addr4}:8000 weight ${1 - weight} -> ${weight}`;
    const at = new Map<string, number>();
    for (let n = 0; n < 500 && at.size < f.balancers.length; n++) {
      for (const [i, b] of f.balancers.entries()) {
        if (!at.has(b.name) && daemons.get(b.name)!.lb.d.stderr.slice(from[i]).some((l) => l.endsWith(line))) at.set(b.name, Date.now() - since);
      }
      await sleep(20);
    }
    process.stdout.write(`   s1 at weight ${weight} on every balancer (${[...at].map(([b, ms]) => `${b} after ${ms} ms`).join(', ')}); what they logged:\n`);
    for (const b of f.balancers) {
      const lines = daemons.get(b.name)!.lb.d.stderr.filter((l) => l.includes(`${s1.addr4}:8000`));
      process.stdout.write(lines.slice(-2).map((l) => `   ${b.name}: ${l}\n`).join(''));
    }
  };
  say(`Kill s1's server: each balancer's checks take it out after 3 failures (3 x 500 ms)`);
  const beforeKill = marks();
  const tKill = Date.now();
  await s.killServer(s1);
  await s1Weight(0, tKill, beforeKill);
  show(`xdp-lb --status (on ${b1.name})`, s.cli(b1, 'xdp-lb', ['--status']));
  await spread('s1 down');
  say('Start s1\'s server again: back after 2 good checks (and python\'s start)');
  const beforeStart = marks();
  const tStart = Date.now();
  s.startServer(s1);
  await s.serving(s1);
  await s1Weight(1, tStart, beforeStart);
  await spread('s1 back');

  say(`Cut ${b3.name}'s link: BFD takes it out of the router's route`);
  const t = Date.now();
  f.linkDown(b3);
  const ms = await f.waitNexthops(f.vip4, [b1.front4, b2.front4], 10_000);
  process.stdout.write(`   the router dropped ${b3.name} after ${Math.round(ms)} ms\n`);
  await spread(`${b3.name} cut`);
  f.linkUp(b3);
  await f.waitNexthops(f.vip4, f.balancers.map((b) => b.front4), 20_000);
  process.stdout.write(`   ${b3.name} back in the route ${Date.now() - t} ms after the cut\n`);
  await spread('all back');
}

try {
  await main();
  say('Done: removing the lab');
} finally {
  await cleanup();
}
