// The BIRD driver against real BIRD daemons: a fleet of balancers behind a
// router (test/helpers/fleet.ts), each balancer's BIRD running the shipped
// example config. What a balancer announces through BirdDriver is read back
// from the router's kernel routing table with `ip -j route`: one ECMP route
// per VIP whose nexthops are exactly the announcing balancers.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BirdDriver, renderInclude } from '../../src/programs/lb/bird.js';
import { makeFleet, ROUTER_PEER, STATIC_PROTOCOL, type Fleet, type FleetBalancer } from '../helpers/fleet.js';

let fleet: Fleet | undefined;
let server: Server | undefined;
afterEach(() => {
  fleet?.destroy();
  fleet = undefined;
  server?.close();
  server = undefined;
});

// `bird --version` answers on stderr.
const BIRD_VERSION = /BIRD version (\S+)/.exec(spawnSync('bird', ['--version'], { encoding: 'utf8' }).stderr)?.[1];

function driver(b: FleetBalancer, peers = [ROUTER_PEER]): BirdDriver {
  return new BirdDriver({ socket: b.birdSocket, includeFile: b.includeFile, protocol: STATIC_PROTOCOL, peers });
}

async function fleetUp(opts: Parameters<typeof makeFleet>[0]): Promise<Fleet> {
  fleet = await makeFleet(opts);
  await fleet.waitEstablished();
  return fleet;
}

/** The router's nexthops for both VIPs become exactly those balancers' addresses. */
async function expectNexthops(f: Fleet, v4: FleetBalancer[], v6 = v4): Promise<void> {
  await f.waitNexthops(f.vip4, v4.map((b) => b.front4));
  await f.waitNexthops(f.vip6, v6.map((b) => b.front6));
  expect(f.routeNexthops(f.vip4)).toEqual(v4.map((b) => b.front4).sort());
  expect(f.routeNexthops(f.vip6)).toEqual(v6.map((b) => b.front6).sort());
}

function routeGet(ns: string, to: string): { gateway?: string; dev: string } {
  return JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'route', 'get', to], { encoding: 'utf8' }))[0];
}

function ping(ns: string, to: string): void {
  execFileSync('nsenter', [`--net=/run/netns/${ns}`, 'ping', '-c', '1', '-W', '2', to], { stdio: 'ignore' });
}

describe('the fleet lab', () => {
  it('routes clients to balancers through the router, balancers straight to backends, backends to clients through the router', async () => {
    const f = await fleetUp({ balancers: 3, backends: 3 });
    const r = f.router;
    for (const b of f.balancers) {
      for (const to of [b.front4, b.front6]) ping(f.client.ns, to);
      for (const s of f.backends) {
        for (const to of [s.addr4, s.addr6]) {
          expect(routeGet(b.ns, to)).toMatchObject({ dev: b.backIf });
          expect(routeGet(b.ns, to).gateway).toBeUndefined();
          ping(b.ns, to);
        }
      }
    }
    for (const s of f.backends) {
      expect(routeGet(s.ns, f.client.addrs4[0])).toMatchObject({ gateway: r.back4, dev: s.ifname });
      expect(routeGet(s.ns, f.client.addrs6[2])).toMatchObject({ gateway: r.back6, dev: s.ifname });
      for (const to of [...f.client.addrs4, ...f.client.addrs6]) ping(s.ns, to);
    }
    const sysctl = (key: string) => execFileSync('nsenter', [`--net=/run/netns/${r.ns}`, 'sysctl', '-n', key], { encoding: 'utf8' }).trim();
    expect(['net.ipv4.fib_multipath_hash_policy', 'net.ipv6.fib_multipath_hash_policy', 'net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding'].map(sysctl))
      .toEqual(['1', '1', '1', '1']);
    // Each BIRD is the lab's own child, and wrote its pid where it was told.
    for (const b of f.balancers) expect(Number(readFileSync(b.birdPidFile, 'utf8'))).toBe(b.bird!.pid);
  });
});

describe('BirdDriver with a fleet of balancers', () => {
  it('makes the router install one ECMP route per VIP whose nexthops are exactly the announcing balancers (IPv4, IPv6)', async () => {
    const f = await fleetUp({ balancers: 3 });
    const [b1, b2, b3] = f.balancers;
    const [d1, d2, d3] = f.balancers.map((b) => driver(b));
    const s = await d1.status();
    expect(s).toEqual({
      reachable: true, version: BIRD_VERSION,
      sessions: [{ name: ROUTER_PEER, state: 'up', info: 'Established', since: expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3}$/), established: true, neighbor: f.router.front4 }],
    });
    expect(f.routeNexthops(f.vip4)).toEqual([]);
    expect(f.routeNexthops(f.vip6)).toEqual([]);

    expect(await d1.announce([f.vip4, f.vip6])).toEqual({ changed: true, reconfigured: true });
    await expectNexthops(f, [b1]);
    expect(await d2.announce([f.vip6, f.vip4])).toEqual({ changed: true, reconfigured: true });
    expect(await d3.announce([`${f.vip4}/32`, 'fd04:0::0:10/128'])).toEqual({ changed: true, reconfigured: true });
    await expectNexthops(f, [b1, b2, b3]);
    // One route holding three nexthops, not three routes.
    const route = JSON.parse(execFileSync('ip', ['-n', f.router.ns, '-j', 'route', 'show', 'exact', `${f.vip4}/32`], { encoding: 'utf8' }));
    expect(route).toHaveLength(1);
    expect(route[0].protocol).toBe('bird');
    expect(route[0].nexthops.map((n: { dev: string }) => n.dev)).toEqual([f.router.frontIf, f.router.frontIf, f.router.frontIf]);

    // The file BIRD includes, written once, readable by Debian's `bird` user.
    const expected = renderInclude(STATIC_PROTOCOL, [f.vip4, f.vip6]);
    expect(expected).toContain(`protocol static xdplb_vips4 {\n\tipv4;\n\troute ${f.vip4}/32 blackhole;\n}\n`);
    expect(expected).toContain(`protocol static xdplb_vips6 {\n\tipv6;\n\troute ${f.vip6}/128 blackhole;\n}\n`);
    for (const b of f.balancers) {
      expect(readFileSync(b.includeFile, 'utf8')).toBe(expected);
      expect(statSync(b.includeFile).mode & 0o777).toBe(0o644);
    }
    const inode = statSync(b1.includeFile).ino;
    expect(await d1.announce([f.vip6, f.vip4, f.vip4])).toEqual({ changed: false, reconfigured: false });
    expect(statSync(b1.includeFile).ino).toBe(inode);

    // Withdrawn on one balancer: exactly its nexthop goes; announced again: back.
    const t0 = performance.now();
    expect(await d2.withdrawAll()).toEqual({ changed: true, reconfigured: true });
    await expectNexthops(f, [b1, b3]);
    const withdrawn = performance.now() - t0;
    const t1 = performance.now();
    expect(await d2.announce([f.vip4, f.vip6])).toEqual({ changed: true, reconfigured: true });
    await expectNexthops(f, [b1, b2, b3]);
    console.log(`withdrawAll() to the router's table: ${withdrawn.toFixed(0)} ms; announce(): ${(performance.now() - t1).toFixed(0)} ms`);
    // One family withdrawn, the other kept.
    expect(await d3.announce([f.vip4])).toEqual({ changed: true, reconfigured: true });
    await expectNexthops(f, [b1, b2, b3], [b1, b2]);

    for (const d of [d1, d2, d3]) await d.withdrawAll();
    await expectNexthops(f, []);
    expect((await d1.status()).sessions[0].established).toBe(true);
  });

  it('reports a stopped BIRD or a missing socket in one line, rejects announce with the reason, and recovers when BIRD is back', async () => {
    const f = await fleetUp({ balancers: 2 });
    const [b1, b2] = f.balancers;
    const d1 = driver(b1, [ROUTER_PEER, 'nosuch']);
    expect((await d1.status()).sessions[1]).toEqual({ name: 'nosuch', state: 'missing', info: 'BIRD has no such protocol', established: false });

    const missing = join(f.dir, 'none.ctl');
    const lost = new BirdDriver({ socket: missing, includeFile: join(f.dir, 'lost.conf'), protocol: STATIC_PROTOCOL });
    const why = `BIRD control socket ${missing}: no such socket (is BIRD running?)`;
    expect(await lost.status()).toEqual({ reachable: false, error: why, sessions: [] });
    await expect(lost.announce([f.vip4])).rejects.toThrow(why);

    // Stopped: BIRD removes its socket on SIGTERM.
    await f.stopBird(b1);
    const stopped = `BIRD control socket ${b1.birdSocket}: no such socket (is BIRD running?)`;
    expect(await d1.status()).toEqual({ reachable: false, error: stopped, sessions: [] });
    await expect(d1.announce([f.vip4, f.vip6])).rejects.toThrow(stopped);
    // The file says what should be announced; a BIRD started now reads it.
    expect(readFileSync(b1.includeFile, 'utf8')).toBe(renderInclude(STATIC_PROTOCOL, [f.vip4, f.vip6]));

    // Killed: its socket is left behind, and nobody listens.
    await f.startBird(b1);
    await f.stopBird(b1, 'SIGKILL');
    const refused = `BIRD control socket ${b1.birdSocket}: connection refused (BIRD is not running)`;
    expect(await d1.status()).toEqual({ reachable: false, error: refused, sessions: [] });
    await expect(d1.announce([f.vip4])).rejects.toThrow(refused);

    // A socket that accepts and never answers: every wait has a deadline.
    const silent = join(f.dir, 'silent.ctl');
    server = createServer(() => undefined);
    await new Promise<void>((r) => server!.listen(silent, r));
    const mute = new BirdDriver({ socket: silent, includeFile: join(f.dir, 'mute.conf'), protocol: STATIC_PROTOCOL, timeoutMs: 300 });
    const t0 = performance.now();
    expect(await mute.status()).toEqual({ reachable: false, error: `BIRD at ${silent} did not answer connecting within 300 ms`, sessions: [] });
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(mute.announce([])).rejects.toThrow(`BIRD at ${silent} did not answer connecting within 300 ms`);

    // Back: the same content is configured again (BIRD was never told it), and routed.
    await f.startBird(b1);
    expect(await d1.announce([f.vip4])).toEqual({ changed: false, reconfigured: true });
    await f.waitEstablished();
    expect((await d1.status()).sessions[0]).toMatchObject({ name: ROUTER_PEER, state: 'up', established: true });
    await driver(b2).announce([f.vip4]);
    await expectNexthops(f, [b1, b2], []);
  });

  it("reports BIRD's own message when the operator's config does not parse, and applies once it is fixed", async () => {
    const f = await fleetUp({ balancers: 2 });
    const [b1, b2] = f.balancers;
    const d1 = driver(b1);
    await d1.announce([f.vip4]);
    await expectNexthops(f, [b1], []);

    const good = readFileSync(b1.birdConfig, 'utf8');
    appendFileSync(b1.birdConfig, 'protocol bogus {\n');
    const line = good.split('\n').length;
    await expect(d1.announce([f.vip4, f.vip6])).rejects.toThrow(
      new RegExp(`^BIRD refused to reconfigure: ${b1.birdConfig.replace(/[.]/g, '\\.')}:${line}:\\d+ syntax error, unexpected CF_SYM_UNDEFINED$`),
    );
    // BIRD kept its running config: still only the IPv4 VIP, still routed.
    await expectNexthops(f, [b1], []);
    expect((await d1.status()).sessions[0].established).toBe(true);

    writeFileSync(b1.birdConfig, good);
    expect(await d1.announce([f.vip4, f.vip6])).toEqual({ changed: false, reconfigured: true });
    await expectNexthops(f, [b1]);
    expect((await driver(b2).status()).sessions[0].established).toBe(true);
  });
});

describe("a balancer's link cut", () => {
  for (const bfd of [true, false]) {
    it(`takes its nexthop off the router ${bfd ? 'by BFD (100 ms x 3)' : 'by the BGP hold timer (3 s)'}, and puts it back when the link returns`, async () => {
      const f = await fleetUp({ balancers: 2, bfd });
      const [b1, b2] = f.balancers;
      for (const b of f.balancers) await driver(b).announce([f.vip4, f.vip6]);
      await expectNexthops(f, [b1, b2]);

      const t0 = performance.now();
      f.linkDown(b1);
      await f.waitNexthops(f.vip4, [b2.front4], 10_000);
      const down4 = performance.now() - t0;
      await f.waitNexthops(f.vip6, [b2.front6], 10_000);
      const down6 = performance.now() - t0;
      const t1 = performance.now();
      f.linkUp(b1);
      await expectNexthops(f, [b1, b2]);
      const up = performance.now() - t1;
      console.log(`link cut, ${bfd ? 'BFD' : 'hold timer'}: nexthop gone after ${down4.toFixed(0)} ms (IPv4), ${down6.toFixed(0)} ms (IPv6); back ${up.toFixed(0)} ms after the link returned`);
      if (bfd) {
        expect(down4).toBeLessThan(1500);
      } else {
        // Keepalives every 0.75-1 s and a 3 s hold time (BIRD jitters its
        // timers), then the session's routes are flushed: 2.4-3.4 s here.
        // Above 1 s: no BFD at work; generous above.
        expect(down4).toBeGreaterThan(1000);
        expect(down4).toBeLessThan(6000);
      }
      expect(down6 - down4).toBeLessThan(500);
    });
  }
});
