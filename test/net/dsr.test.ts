// Direct server return end to end: the tutorial's lab (a client with three
// addresses, the balancer, two unmodified `python3 -m http.server`
// backends on one bridge), each backend with its VIPs on lo, the sysctls
// `xdp-decap --check` asks for and xdp-decap attached by the CLI. Per mode
// (dsr-l2, ipip, gue) and family: 1000 requests, none failing, the
// backends' access logs showing each client's own address, and no reply
// through the balancer; a backend removed under load; a 100 KB POST through
// an ipip VIP on 1500-byte links (path MTU discovery through the
// balancer's too-big answers); in native and skb mode.
import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ok, run, xdpRoot } from '../helpers/cli.js';
import { inNs, loadScript, type RequestRecord } from '../helpers/lblab.js';
import { MODES, VIPS, accessLog, backendSysctls, dsrConfig, makeDsrLab, switchMode, sysctl, type DsrLab, type DsrMode } from '../helpers/dsrlab.js';

const REQUESTS = 1000;

function load(l: DsrLab, opts: Parameters<typeof loadScript>[0]): Promise<RequestRecord[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('nsenter', [`--net=/run/netns/${l.ns.client}`, process.execPath, '-e', loadScript(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`load generator exit ${code}: ${err}`);
        resolve(JSON.parse(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

function tally(records: RequestRecord[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of records) t[r.who ?? `error: ${r.error}`] = (t[r.who ?? `error: ${r.error}`] ?? 0) + 1;
  return t;
}

const tallyOf = (list: string[]) => list.reduce<Record<string, number>>((t, a) => ({ ...t, [a]: (t[a] ?? 0) + 1 }), {});
const url = (vip: string, path = '/who') => `http://${vip.includes(':') ? `[${vip}]` : vip}:8000${path}`;
const lbStatus = (l: DsrLab) => JSON.parse(ok(run(BIN('xdp-lb'), ['--status', '--json'], { netns: l.ns.lb })));
const vipOf = (l: DsrLab, vip: string) => lbStatus(l).vips.find((v: { address: string }) => v.address === vip);
/** Every packet the balancer's root array saw, whatever became of it. */
const rootSeen = (l: DsrLab) => {
  const s = JSON.parse(ok(xdpRoot(['--status', '--json', '--interface', l.lbIf], { netns: l.ns.lb })))[l.lbIf];
  return Object.values(s.statistics as Record<string, number>).reduce((a, b) => a + b, 0);
};
const decapStatus = (l: DsrLab, name: 'b1' | 'b2') =>
  JSON.parse(ok(run(BIN('xdp-decap'), ['--status', '--json'], { netns: l.ns[name] })))[l.devs[name]];

/** `count` requests to each of `vips` in turn, from the three client
 *  addresses of its family, each on a new connection; then what the
 *  backends, the balancer and the decapsulators saw of them. */
async function serve(l: DsrLab, forwarding: DsrMode, vips: string[], count: number) {
  const before = {
    logs: { b1: accessLog(l, 'b1').length, b2: accessLog(l, 'b2').length }, seen: rootSeen(l),
    vips: vips.map((v) => vipOf(l, v)), decap: { b1: decapStatus(l, 'b1'), b2: decapStatus(l, 'b2') },
  };
  const loads: RequestRecord[][] = [];
  for (const vip of vips) loads.push(await load(l, { url: url(vip), locals: vip.includes(':') ? l.clients6 : l.clients4, count, concurrency: 8 }));
  const records = loads.flat();
  loads.forEach((r, i) => {
    const t = tally(r);
    expect([vips[i], r.length, Object.keys(t).sort()]).toEqual([vips[i], count, ['b1', 'b2']]);
    expect(Math.abs(t.b1 - count / 2) / (count / 2)).toBeLessThanOrEqual(0.2);
  });

  // Each backend logged exactly the requests it answered, by the address
  // each client sent from.
  const logged = { b1: accessLog(l, 'b1').slice(before.logs.b1), b2: accessLog(l, 'b2').slice(before.logs.b2) };
  for (const b of ['b1', 'b2'] as const) {
    expect([b, tallyOf(logged[b])]).toEqual([b, tallyOf(records.filter((r) => r.who === b).map((r) => r.local))]);
  }

  // The last connections' closing packets may still be on their way: the
  // counters are read once they stand still.
  const packets = () => vips.reduce((n, v) => n + vipOf(l, v).counters.packets, 0);
  for (let last = -1, now = packets(), end = Date.now() + 10_000; now !== last && Date.now() < end; last = now, now = packets()) {
    await new Promise((r) => setTimeout(r, 500));
  }

  // The balancer saw the clients' packets and nothing else: every reply
  // went from the backend to the client directly.
  let inbound = 0;
  const kinds: string[] = [];
  vips.forEach((vip, i) => {
    const was = before.vips[i].counters;
    const now = vipOf(l, vip);
    const c = now.counters;
    const sent = c.packets - was.packets;
    inbound += sent;
    expect([vip, now.forwarding, c.reply_packets]).toEqual([vip, forwarding, 0]);
    expect(sent).toBeGreaterThanOrEqual(count * 5);
    expect(c.new_conns - was.new_conns).toBeGreaterThanOrEqual(count);
    expect([vip, c.encapsulated - was.encapsulated]).toEqual([vip, forwarding === 'dsr-l2' ? 0 : sent]);
    for (const k of ['no_backend', 'fib_failures', 'too_big', 'bad_checksum']) expect([vip, k, c[k] - was[k]]).toEqual([vip, k, 0]);
    if (forwarding !== 'dsr-l2') kinds.push(`${forwarding}${vip.includes(':') ? 6 : 4}`);
  });
  const seen = rootSeen(l) - before.seen;
  expect(seen).toBeGreaterThanOrEqual(inbound);
  expect(seen - inbound).toBeLessThan(60); // ARP, neighbour discovery

  // The decapsulators took apart what was encapsulated, never more: a
  // packet the virtual network lost on the way (generic XDP's XDP_TX in
  // skb mode drops one now and then in a burst; TCP sends it again, and the
  // request, checked above, succeeds) is the only difference allowed.
  const after = { b1: decapStatus(l, 'b1'), b2: decapStatus(l, 'b2') };
  const taken = (['b1', 'b2'] as const).reduce((n, b) => n + kinds.reduce((m, k) => m + after[b].stats[k] - before.decap[b].stats[k], 0), 0);
  if (forwarding === 'dsr-l2') expect(taken).toBe(0);
  else {
    expect(taken).toBeLessThanOrEqual(inbound);
    expect(inbound - taken).toBeLessThanOrEqual(Math.floor(inbound / 500));
  }
  for (const b of ['b1', 'b2'] as const) expect([b, after[b].stats.malformed]).toEqual([b, 0]);
}

describe('direct server return', () => {
  let lab: DsrLab;
  beforeAll(async () => {
    lab = await makeDsrLab('native');
  });
  afterAll(() => lab?.destroy());

  // Native first, then the same lab in skb mode.
  for (const xdpMode of ['native', 'skb'] as const) describe(`in ${xdpMode} mode`, () => {
    beforeAll(() => {
      if (xdpMode !== 'native') switchMode(lab, xdpMode);
      const modeOf = (ns: string, dev: string) => JSON.parse(ok(xdpRoot(['--status', '--json', '--interface', dev], { netns: ns })))[dev].mode;
      expect([modeOf(lab.ns.lb, lab.lbIf), modeOf(lab.ns.b1, lab.devs.b1), modeOf(lab.ns.b2, lab.devs.b2)]).toEqual([xdpMode, xdpMode, xdpMode]);
    });

    // Native: 1000 requests per mode and family. Skb: 1000 per mode, half
    // of each family (the same code paths, less of the run's time).
    for (const forwarding of MODES) {
      const runs = xdpMode === 'native' ? (['v4', 'v6'] as const).map((f) => [f]) : [['v4', 'v6'] as const];
      for (const families of runs) {
        const each = REQUESTS / families.length;
        it(`${forwarding}, ${families.map((f) => `IPv${f[1]}`).join(' and ')}: ${each} requests${families.length > 1 ? ' each' : ''} from the client's addresses, none failing; the backends log the clients; no reply crosses the balancer`, async () => {
          await serve(lab, forwarding, families.map((f) => VIPS[forwarding][f]), each);
        }, 120_000);
      }
    }

    if (xdpMode !== 'native') return;

    it('xdp-decap --check passes on both backends, and names what a misconfigured one lacks', () => {
      const vips = MODES.flatMap((m) => [VIPS[m].v4, VIPS[m].v6]).join(',');
      for (const name of ['b1', 'b2'] as const) {
        const r = run(BIN('xdp-decap'), ['--check', '--vip', vips, '--json'], { netns: lab.ns[name] });
        expect([name, r.code, r.stderr]).toEqual([name, 0, '']);
        const out = JSON.parse(r.stdout);
        expect(out.ok).toBe(true);
        expect(out.checks.map((c: { check: string }) => c.check)).toEqual([...Array(6).fill('vip_local'), 'rp_filter', 'arp_ignore', 'arp_announce', 'decap']);
      }
      const ns = lab.ns.b2;
      const dev = lab.devs.b2;
      sysctl(ns, `net.ipv4.conf.${dev}.rp_filter=1`, `net.ipv4.conf.${dev}.arp_ignore=0`, 'net.ipv4.conf.all.arp_ignore=0');
      ok(run('ip', ['-n', ns, 'addr', 'del', `${VIPS.gue.v4}/32`, 'dev', 'lo']));
      try {
        const r = run(BIN('xdp-decap'), ['--check', '--vip', `${VIPS['dsr-l2'].v4},${VIPS.gue.v4}`, '--forwarding', 'dsr-l2'], { netns: ns });
        expect(r.code).toBe(1);
        // rp_filter: all is 2 (loose), which wins over the interface's strict 1.
        expect(r.stdout.split('\n')).toEqual([
          `What this host needs as a backend of ${VIPS['dsr-l2'].v4}, ${VIPS.gue.v4} (dsr-l2) on ${dev}:`,
          `  ok       VIP ${VIPS['dsr-l2'].v4} is an address of this network namespace`,
          `  MISSING  VIP ${VIPS.gue.v4} is not an address of this network namespace: the kernel would not take the client's packets to it as its own; fix: ip address add ${VIPS.gue.v4}/32 dev lo`,
          `  ok       rp_filter on ${dev} is 2 (loose; the larger of all 2 and ${dev} 1)`,
          `  MISSING  arp_ignore on ${dev} is 0 (the larger of all 0 and ${dev} 0): this host answers ARP for its VIPs and takes their traffic from the balancer; fix: sysctl -w net.ipv4.conf.${dev}.arp_ignore=1`,
          `  ok       arp_announce on ${dev} is 2 (the larger of all 2 and ${dev} 2)`,
          '2 of 5 checks failed.',
          '',
        ]);
        // Strict everywhere: now the filter is missing too.
        sysctl(ns, 'net.ipv4.conf.all.rp_filter=1');
        const strict = JSON.parse(run(BIN('xdp-decap'), ['--check', '--vip', VIPS.ipip.v4, '--forwarding', 'ipip', '--json'], { netns: ns }).stdout);
        expect(strict.checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([{
          check: 'rp_filter', subject: dev, ok: false,
          detail: `rp_filter on ${dev} is 1 (strict; the larger of all 1 and ${dev} 1): strict filtering drops clients whose route back leaves by another interface`,
          fix: `sysctl -w net.ipv4.conf.${dev}.rp_filter=2`,
        }]);
      } finally {
        ok(run('ip', ['-n', ns, 'addr', 'add', `${VIPS.gue.v4}/32`, 'dev', 'lo']));
        backendSysctls(ns, dev);
      }
      expect(run(BIN('xdp-decap'), ['--check', '--vip', vips], { netns: ns }).code).toBe(0);
    });

    it('keeps every request whole when a backend is removed under load; new connections go to the other', async () => {
      const vip = VIPS.ipip.v4;
      // Six at a time, as the NAT test: one backend takes them all after
      // the removal, and http.server listens with a backlog of 5.
      const running = load(lab, { url: url(vip), locals: lab.clients4, ms: 4000, concurrency: 6 });
      try {
        await new Promise((r) => setTimeout(r, 1500));
        const t0 = Date.now();
        const file = join(lab.dir, 'without-b2.json');
        writeFileSync(file, JSON.stringify(dsrConfig({ vip, backend: '10.0.0.3' })));
        expect(ok(run(BIN('xdp-lb'), ['--apply', file], { netns: lab.ns.lb }))).toBe('Applied: 1 changed, 1 Maglev table(s) swapped, 1 backend entries written.\n');
        const t1 = Date.now();
        const records = await running;
        expect(Object.keys(tally(records)).sort()).toEqual(['b1', 'b2']);
        expect(records.filter((r) => r.start < t0).some((r) => r.who === 'b2')).toBe(true);
        const after = records.filter((r) => r.start > t1);
        expect(after.length).toBeGreaterThan(50);
        expect(tally(after)).toEqual({ b1: after.length });
        expect(vipOf(lab, vip).backends.find((b: { address: string }) => b.address === '10.0.0.3').removed).toBe(true);
      } finally {
        await running.catch(() => undefined);
        const back = join(lab.dir, 'all.json');
        writeFileSync(back, JSON.stringify(dsrConfig()));
        ok(run(BIN('xdp-lb'), ['--apply', back], { netns: lab.ns.lb }));
      }
    });

    it('takes a 100 KB POST through an ipip VIP on 1500-byte links: the balancer answers too big, the client lowers its path MTU', () => {
      const vip = VIPS.ipip.v4;
      const body = randomBytes(100 * 1024);
      const file = join(lab.dir, 'post.bin');
      writeFileSync(file, body);
      const before = vipOf(lab, vip).counters.too_big;
      const out = inNs(lab.ns.client, 'curl', ['-s', '--max-time', '20', '-H', 'Expect:', '--interface', '10.0.0.4', '--data-binary', `@${file}`, url(vip, '/cgi-bin/sum')]);
      // CGI's REMOTE_ADDR: the client's own address, on a dual-stack socket.
      expect(out).toBe(`::ffff:10.0.0.4 ${body.length} ${createHash('sha256').update(body).digest('hex')}`);
      expect(vipOf(lab, vip).counters.too_big - before).toBeGreaterThanOrEqual(1);
      // The client learnt the path MTU: 1500 less the outer header.
      expect(inNs(lab.ns.client, 'ip', ['route', 'get', vip, 'from', '10.0.0.4'])).toMatch(/ mtu 1480\b/);
      const b = ['b1', 'b2'].find((n) => accessLog(lab, n as 'b1' | 'b2', '/cgi-bin/sum').length);
      expect(accessLog(lab, b as 'b1' | 'b2', '/cgi-bin/sum')).toEqual(['10.0.0.4']);
    });
  });
});
