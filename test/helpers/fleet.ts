// A fleet of balancers behind a router's ECMP, per test, in namespaces:
//
//   client ── router ══ front switch ══ balancer 1..N ══ back switch ══ backend 1..M
//                 └────────────────────────────────────── back switch ┘
//
// The router runs BIRD with a BGP session (and BFD) to each balancer and
// installs what they announce as multipath routes; each balancer runs its own
// BIRD with the shipped example config (etc/bird/xdplb-balancer.conf, only
// its addresses and paths changed), so announcing is writing that BIRD's
// include file and reconfiguring it. The balancers reach the backends on the
// back segment; the backends route to the clients through the router. The lab
// runs no xdplb. Every BIRD is a child started here, with its config, socket
// and pid file in the lab's temp dir, and killed by its own pid; a BIRD the
// bird2 package may run on the host (/run/bird, /etc/bird) is neither used
// nor touched. destroy() removes namespaces, processes and the temp dir, also
// after a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF, ROOT_DIR } from './cli.js';
import { waitFor } from './lblab.js';
import { uniqueTag } from './netns.js';

export const EXAMPLE_CONFIG = join(ROOT_DIR, 'etc/bird/xdplb-balancer.conf');
/** The protocol name of the router session in each balancer's BIRD (from the example). */
export const ROUTER_PEER = 'router1';
export const STATIC_PROTOCOL = 'xdplb_vips';
export const ROUTER_AS = 65000;
export const BALANCER_AS = 65001;

export interface FleetBalancer {
  name: string;
  ns: string;
  /** Towards the router (front segment) and towards the backends (back segment). */
  frontIf: string;
  backIf: string;
  front4: string;
  front6: string;
  back4: string;
  back6: string;
  birdConfig: string;
  birdSocket: string;
  birdPidFile: string;
  birdLog: string;
  /** The file xdplb writes; the config includes `<dir>/xdplb-*.conf`. */
  includeFile: string;
  bird?: ChildProcess;
}

export interface FleetBackend {
  name: string;
  ns: string;
  ifname: string;
  addr4: string;
  addr6: string;
}

export interface Fleet {
  tag: string;
  dir: string;
  bfd: boolean;
  ns: { router: string; client: string; front: string; back: string };
  router: {
    ns: string;
    clientIf: string;
    frontIf: string;
    backIf: string;
    client4: string; client6: string;
    front4: string; front6: string;
    back4: string; back6: string;
    birdConfig: string;
    birdSocket: string;
    birdLog: string;
    /** The router's BGP protocol for each balancer, by balancer name. */
    peers: Record<string, string>;
    bird?: ChildProcess;
  };
  client: { ns: string; ifname: string; addrs4: string[]; addrs6: string[] };
  balancers: FleetBalancer[];
  backends: FleetBackend[];
  /** Addresses for a test to announce: routed nowhere until a balancer does. */
  vip4: string;
  vip6: string;
  /** Resolves when every BGP session of the router is established (and BFD up, with BFD). */
  waitEstablished(ms?: number): Promise<void>;
  /** The router's nexthops (gateway addresses, sorted) for a VIP, read with `ip -j route`; [] when it has no route. */
  routeNexthops(vip: string): string[];
  /** Polls until the VIP's nexthops are exactly `expected` (any order); resolves with the ms it took. */
  waitNexthops(vip: string, expected: string[], ms?: number): Promise<number>;
  linkDown(b: FleetBalancer): void;
  linkUp(b: FleetBalancer): void;
  /** Stop a balancer's BIRD by its pid; resolves once it has exited. */
  stopBird(b: FleetBalancer, signal?: NodeJS.Signals): Promise<void>;
  startBird(b: FleetBalancer): Promise<void>;
  destroy(): void;
}

export interface FleetOptions {
  balancers?: 2 | 3;
  backends?: 2 | 3;
  /** BFD on every BGP session (default true); without it only the hold timer (3 s) notices a dead peer. */
  bfd?: boolean;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function inNs(ns: string, cmd: string, args: string[]): string {
  return execFileSync('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sysctl(ns: string, ...pairs: string[]): void {
  inNs(ns, 'sysctl', ['-q', '-w', ...pairs]);
}

/** The example balancer config with this lab's addresses and paths; throws
 *  if the example no longer has a line the lab relies on. */
function balancerConfig(b: FleetBalancer, routerFront4: string, bfd: boolean): string {
  let text = readFileSync(EXAMPLE_CONFIG, 'utf8');
  const swaps: Array<[string, string]> = [
    ['log syslog all;', `log "${b.birdLog}" all;`],
    ['router id 192.0.2.11;', `router id ${b.front4};`],
    ['include "/run/bird/xdplb-*.conf";', `include "${join(b.includeFile, '..')}/xdplb-*.conf";`],
    [`neighbor 192.0.2.1 as ${ROUTER_AS};`, `neighbor ${routerFront4} as ${ROUTER_AS};`],
  ];
  if (!bfd) swaps.push(['bfd on;', 'bfd off;']);
  for (const [from, to] of swaps) {
    if (!text.includes(from)) throw new Error(`${EXAMPLE_CONFIG} has no line '${from}'`);
    text = text.replace(from, to);
  }
  return text;
}

function routerConfig(f: Fleet): string {
  const r = f.router;
  const bgp = f.balancers.map((b) => `protocol bgp ${r.peers[b.name]} from balancer { neighbor ${b.front4} as ${BALANCER_AS}; }\n`).join('');
  return `log "${r.birdLog}" all;
router id ${r.front4};
protocol device { }
${f.bfd ? `protocol bfd { interface "${r.frontIf}" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }\n` : ''}\
# One route per VIP with every balancer announcing it as a nexthop.
protocol kernel k4 { ipv4 { import none; export all; }; merge paths on; }
protocol kernel k6 { ipv6 { import none; export all; }; merge paths on; }
template bgp balancer {
  local ${r.front4} as ${ROUTER_AS};
  hold time 3; keepalive time 1;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  bfd ${f.bfd ? 'on' : 'off'};
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
${bgp}`;
}

async function startBirdIn(ns: string, config: string, socket: string, pidFile: string, log: string): Promise<ChildProcess> {
  // A killed BIRD leaves its socket behind: wait for the new one, not that.
  rmSync(socket, { force: true });
  // nsenter execs bird: the child's pid is bird's own.
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, 'bird', '-f', '-c', config, '-s', socket, '-P', pidFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  await waitFor(() => exited || existsSync(socket), `BIRD's socket ${socket}`);
  if (exited) throw new Error(`bird -c ${config} exited: ${stderr.trim() || readLog(log)}`);
  return child;
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

function killAndWait(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export async function makeFleet(opts: FleetOptions = {}): Promise<Fleet> {
  const nBal = opts.balancers ?? 2;
  const nBack = opts.backends ?? 2;
  const tag = uniqueTag();
  const dir = mkdtempSync(join(tmpdir(), 'xdplb-fleet-'));
  const ns = { router: `xfr-${tag}`, client: `xfc-${tag}`, front: `xff-${tag}`, back: `xfk-${tag}` };
  const balancers: FleetBalancer[] = Array.from({ length: nBal }, (_, k) => {
    const i = k + 1;
    const bdir = join(dir, `b${i}`);
    return {
      name: `b${i}`, ns: `xfb${i}-${tag}`, frontIf: `f${i}${tag}`, backIf: `k${i}${tag}`,
      front4: `10.2.0.${10 + i}`, front6: `fd02::${10 + i}`, back4: `10.3.0.${10 + i}`, back6: `fd03::${10 + i}`,
      birdConfig: join(bdir, 'bird.conf'), birdSocket: join(bdir, 'bird.ctl'), birdPidFile: join(bdir, 'bird.pid'),
      birdLog: join(bdir, 'bird.log'), includeFile: join(bdir, 'xdplb-vips.conf'),
    };
  });
  const backends: FleetBackend[] = Array.from({ length: nBack }, (_, k) => ({
    name: `s${k + 1}`, ns: `xfs${k + 1}-${tag}`, ifname: `s${k + 1}${tag}`, addr4: `10.3.0.${21 + k}`, addr6: `fd03::${21 + k}`,
  }));
  const fleet: Fleet = {
    tag, dir, bfd: opts.bfd ?? true, ns,
    router: {
      ns: ns.router, clientIf: `rc${tag}`, frontIf: `rf${tag}`, backIf: `rk${tag}`,
      client4: '10.1.0.1', client6: 'fd01::1', front4: '10.2.0.1', front6: 'fd02::1', back4: '10.3.0.1', back6: 'fd03::1',
      birdConfig: join(dir, 'router.conf'), birdSocket: join(dir, 'router.ctl'), birdLog: join(dir, 'router.log'),
      peers: Object.fromEntries(balancers.map((b) => [b.name, `bal_${b.name}`])),
    },
    client: { ns: ns.client, ifname: `c${tag}`, addrs4: ['10.1.0.2', '10.1.0.3', '10.1.0.4'], addrs6: ['fd01::2', 'fd01::3', 'fd01::4'] },
    balancers, backends,
    vip4: '10.4.0.10', vip6: 'fd04::10',
    waitEstablished: (ms) => waitEstablished(fleet, ms),
    routeNexthops: (vip) => routeNexthops(fleet, vip),
    waitNexthops: (vip, expected, ms) => waitNexthops(fleet, vip, expected, ms),
    linkDown: (b) => ip('-n', b.ns, 'link', 'set', b.frontIf, 'down'),
    linkUp: (b) => ip('-n', b.ns, 'link', 'set', b.frontIf, 'up'),
    stopBird: async (b, signal = 'SIGTERM') => {
      await killAndWait(b.bird, signal);
      b.bird = undefined;
    },
    startBird: async (b) => {
      b.bird = await startBirdIn(b.ns, b.birdConfig, b.birdSocket, b.birdPidFile, b.birdLog);
    },
    destroy: () => destroy(fleet),
  };
  try {
    build(fleet);
    writeFileSync(fleet.router.birdConfig, routerConfig(fleet));
    fleet.router.bird = await startBirdIn(ns.router, fleet.router.birdConfig, fleet.router.birdSocket, join(dir, 'router.pid'), fleet.router.birdLog);
    for (const b of balancers) {
      mkdirSync(join(b.includeFile, '..'), { recursive: true });
      writeFileSync(b.birdConfig, balancerConfig(b, fleet.router.front4, fleet.bfd));
      await fleet.startBird(b);
    }
  } catch (err) {
    destroy(fleet);
    throw err;
  }
  return fleet;
}

function build(f: Fleet): void {
  const { ns, router: r, client: c } = f;
  for (const n of [...Object.values(ns), ...f.balancers.map((b) => b.ns), ...f.backends.map((b) => b.ns)]) {
    ip('netns', 'add', n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
  }
  for (const sw of [ns.front, ns.back]) {
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
  }
  // host, its interface, the switch (or the peer namespace), addresses
  let port = 0;
  const plug = (host: string, dev: string, sw: string, v4: string[], v6: string[], xdpPeer: boolean) => {
    const p = `p${port++}${f.tag}`;
    ip('link', 'add', dev, 'netns', host, 'type', 'veth', 'peer', 'name', p, 'netns', sw);
    ip('-n', sw, 'link', 'set', p, 'master', 'br0', 'up');
    // Native XDP_TX/REDIRECT out of a veth needs an XDP program on its peer:
    // there for a later test's balancer.
    if (xdpPeer) ip('-n', sw, 'link', 'set', 'dev', p, 'xdpdrv', 'object', BPF('xdp_plain.o'), 'program', 'xdp_plain_pass');
    address(host, dev, v4, v6);
  };
  const address = (host: string, dev: string, v4: string[], v6: string[]) => {
    for (const a of v4) ip('-n', host, 'addr', 'add', `${a}/24`, 'dev', dev);
    for (const a of v6) ip('-n', host, 'addr', 'add', `${a}/64`, 'dev', dev, 'nodad');
    ip('-n', host, 'link', 'set', dev, 'up');
    // Complete checksums, as on a wire: XDP sees raw frames and updates them incrementally.
    inNs(host, 'ethtool', ['-K', dev, 'tx', 'off']);
  };

  // The client and the router: a point-to-point veth.
  ip('link', 'add', c.ifname, 'netns', c.ns, 'type', 'veth', 'peer', 'name', r.clientIf, 'netns', r.ns);
  address(c.ns, c.ifname, c.addrs4, c.addrs6);
  address(r.ns, r.clientIf, [r.client4], [r.client6]);
  ip('-n', c.ns, 'route', 'add', 'default', 'via', r.client4);
  ip('-n', c.ns, '-6', 'route', 'add', 'default', 'via', r.client6);

  plug(r.ns, r.frontIf, ns.front, [r.front4], [r.front6], false);
  plug(r.ns, r.backIf, ns.back, [r.back4], [r.back6], false);
  sysctl(r.ns, 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1',
    // ECMP by the 5-tuple, so one client's flows spread over the balancers.
    'net.ipv4.fib_multipath_hash_policy=1', 'net.ipv6.fib_multipath_hash_policy=1');

  for (const b of f.balancers) {
    // Keep IPv6 addresses over a link down and up (the default flushes them).
    sysctl(b.ns, 'net.ipv6.conf.all.keep_addr_on_down=1', 'net.ipv6.conf.default.keep_addr_on_down=1');
    plug(b.ns, b.frontIf, ns.front, [b.front4], [b.front6], true);
    plug(b.ns, b.backIf, ns.back, [b.back4], [b.back6], true);
    ip('-n', b.ns, 'route', 'add', 'default', 'via', r.front4);
    ip('-n', b.ns, '-6', 'route', 'add', 'default', 'via', r.front6);
    sysctl(b.ns, 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1');
  }
  for (const s of f.backends) {
    // The decapsulator sends a stateless VIP's chained packets on with XDP_TX.
    plug(s.ns, s.ifname, ns.back, [s.addr4], [s.addr6], true);
    ip('-n', s.ns, 'route', 'add', 'default', 'via', r.back4);
    ip('-n', s.ns, '-6', 'route', 'add', 'default', 'via', r.back6);
  }
}

function birdc(f: Fleet, cmd: string[]): string {
  return execFileSync('birdc', ['-s', f.router.birdSocket, ...cmd], { encoding: 'utf8' });
}

async function waitEstablished(f: Fleet, ms = 20_000): Promise<void> {
  const names = Object.values(f.router.peers);
  const up = () => {
    const out = birdc(f, ['show', 'protocols']);
    if (!names.every((n) => new RegExp(`^${n}\\s+BGP\\s+\\S+\\s+up\\s+.*Established`, 'm').test(out))) return false;
    if (!f.bfd) return true;
    const bfd = birdc(f, ['show', 'bfd', 'sessions']);
    return f.balancers.every((b) => b.bird === undefined || new RegExp(`^${b.front4.replace(/\./g, '\\.')}\\s+\\S+\\s+Up\\b`, 'm').test(bfd));
  };
  try {
    await waitFor(up, 'BGP sessions', ms);
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${birdc(f, ['show', 'protocols']).replace(/\s+/g, ' ')}`);
  }
}

function routeNexthops(f: Fleet, vip: string): string[] {
  const family = vip.includes(':') ? '-6' : '-4';
  const len = vip.includes(':') ? 128 : 32;
  const routes = JSON.parse(execFileSync('ip', ['-n', f.router.ns, '-j', family, 'route', 'show', 'exact', `${vip}/${len}`], { encoding: 'utf8' })) as Array<{
    gateway?: string; nexthops?: Array<{ gateway: string }>;
  }>;
  return routes.flatMap((r) => (r.nexthops ? r.nexthops.map((n) => n.gateway) : r.gateway ? [r.gateway] : [])).sort();
}

async function waitNexthops(f: Fleet, vip: string, expected: string[], ms = 10_000): Promise<number> {
  const want = JSON.stringify([...expected].sort());
  const start = performance.now();
  let last: string[] = [];
  while (performance.now() - start < ms) {
    last = routeNexthops(f, vip);
    if (JSON.stringify(last) === want) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`router's nexthops for ${vip} after ${ms} ms: [${last.join(', ')}], expected [${[...expected].sort().join(', ')}]`);
}

function destroy(f: Fleet): void {
  for (const child of [f.router.bird, ...f.balancers.map((b) => b.bird)]) {
    try {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const n of [...Object.values(f.ns), ...f.balancers.map((b) => b.ns), ...f.backends.map((b) => b.ns)]) {
    try {
      ip('netns', 'del', n);
    } catch {
      // never made, or already gone
    }
  }
  rmSync(f.dir, { recursive: true, force: true });
}
