// xdp-lb on real interfaces: the tutorial's lab (client, balancer, two
// `python3 -m http.server` backends on one L2 segment), real HTTP through the
// VIP from three client addresses, in native and skb mode, IPv4 and IPv6,
// a backend removed under load, and UDP echo.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, ok, run, xdpRoot } from '../helpers/cli.js';
import { inNs, loadScript, makeLbLab, startHttpBackends, startUdpEcho, type LbLab, type RequestRecord } from '../helpers/lblab.js';

let lab: LbLab | undefined;
afterEach(() => {
  lab?.destroy();
  lab = undefined;
});

const lb = (args: string[]) => run(BIN('xdp-lb'), args, { netns: lab!.ns.lb });

function config(l: LbLab, vips: unknown[]): string {
  const file = join(l.dir, 'lb.json');
  writeFileSync(file, JSON.stringify({ nat: { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' }, vips }, null, 2));
  return file;
}

const HTTP4 = { address: '10.0.0.10', port: 8000, protocol: 'tcp', backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }] };
const HTTP6 = { address: 'fd00::10', port: 8000, protocol: 'tcp', backends: [{ address: 'fd00::2' }, { address: 'fd00::3' }] };

/** The lab with UDP echo servers on port 5353 behind udp:10.0.0.10:53. */
function udpEchoLab(): LbLab {
  lab = makeLbLab();
  startUdpEcho(lab);
  ok(xdpRoot(['--attach', '--interface', lab.lbIf, '--mode', 'native'], { netns: lab.ns.lb }));
  ok(lb(['--attach', '--interface', lab.lbIf]));
  ok(lb(['--vip-add', 'udp:10.0.0.10:53', '--backend', '10.0.0.2:5353,10.0.0.3:5353', '--nat-source', '10.0.0.10']));
  return lab;
}

async function setUp(mode: 'native' | 'skb', vips: unknown[]): Promise<LbLab> {
  lab = makeLbLab();
  await startHttpBackends(lab);
  ok(xdpRoot(['--attach', '--interface', lab.lbIf, '--mode', mode], { netns: lab.ns.lb }));
  expect(ok(lb(["--attach", "--interface", lab.lbIf]))).toMatch(new RegExp(`^Attached xdp_lb \\(id \\d+\\) to slot 7 of ${lab.lbIf}\\.\\n$`));
  expect(ok(lb(['--apply', config(lab, vips)]))).toMatch(/^Applied: \d+ VIP\(s\) added/);
  return lab;
}

/** Run the load generator in the client namespace; resolves with its records. */
function load(l: LbLab, opts: Parameters<typeof loadScript>[0]): Promise<RequestRecord[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('nsenter', [`--net=/run/netns/${l.ns.client}`, process.execPath, '-e', loadScript(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exit ${code}: ${err}`))));
  });
}

function tally(records: RequestRecord[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of records) t[r.who ?? `error: ${r.error}`] = (t[r.who ?? `error: ${r.error}`] ?? 0) + 1;
  return t;
}

function status(l: LbLab) {
  return JSON.parse(ok(run(BIN('xdp-lb'), ['--status', '--json', '--interface', l.lbIf], { netns: l.ns.lb })));
}

for (const mode of ['native', 'skb'] as const) {
  describe(`in ${mode} mode`, () => {
    it('serves 1000 HTTP requests from three client addresses through the VIP, both backends evenly, none failing', async () => {
      const l = await setUp(mode, [HTTP4]);
      // curl as an operator would: the first request also resolves the neighbours.
      expect(['b1', 'b2']).toContain(inNs(l.ns.client, 'curl', ['-s', '--max-time', '5', 'http://10.0.0.10:8000/who']));
      const records = await load(l, { url: 'http://10.0.0.10:8000/who', locals: l.clients4, count: 1000, concurrency: 8 });
      const t = tally(records);
      expect(records).toHaveLength(1000);
      expect(Object.keys(t).sort()).toEqual(['b1', 'b2']);
      expect(Math.abs(t.b1 - 500) / 500).toBeLessThanOrEqual(0.15);
      expect(new Set(records.map((r) => r.local))).toEqual(new Set(l.clients4));
      const s = status(l);
      expect(Object.keys(s.interfaces)).toEqual([l.lbIf]);
      expect(s.interfaces[l.lbIf].slot).toBe(7);
      const vip = s.vips[0];
      // At least one flow per request (a client may reuse a closed flow's
      // 4-tuple for a new connection: a new flow again).
      expect(vip.counters.new_conns).toBeGreaterThanOrEqual(1001);
      expect(vip.counters.fib_failures).toBe(0);
      expect(vip.counters.nat_exhausted).toBe(0);
      expect(vip.backends.map((b: { counters: { new_conns: number } }) => b.counters.new_conns).reduce((a: number, b: number) => a + b)).toBe(vip.counters.new_conns);
      const root = JSON.parse(ok(xdpRoot(['--status', '--json', '--interface', l.lbIf], { netns: l.ns.lb })))[l.lbIf];
      expect(root.subprograms[7].name).toBe('xdp_lb');
      expect(root.subprograms[7].statistics.XDP_TX).toBeGreaterThan(2000);
    });
  });
}

const REMOVAL = [
  { family: 'IPv4', vip: HTTP4, host: '10.0.0.10', url: 'http://10.0.0.10:8000/who', name: 'tcp:10.0.0.10:8000', gone: '10.0.0.3', locals: (l: LbLab) => l.clients4 },
  { family: 'IPv6', vip: HTTP6, host: 'fd00::10', url: 'http://[fd00::10]:8000/who', name: 'tcp:[fd00::10]:8000', gone: 'fd00::3', locals: (l: LbLab) => l.clients6 },
];

describe('xdp-lb', () => {
  for (const f of REMOVAL) {
    it(`keeps established flows when a backend is removed under load, and sends it no new flow (${f.family})`, async () => {
      const l = await setUp('native', [f.vip]);
      // Connections held open across the change: half a request now, the rest
      // after the backend is gone; each must still be answered by its backend.
      const held = new Promise<Array<{ local: string; who: string }>>((resolve, reject) => {
        const script = `
  const net = require('node:net');
  const locals = ${JSON.stringify(f.locals(l))};
  const out = [];
  const socks = Array.from({ length: 12 }, (_, i) => {
    const s = net.connect({ host: ${JSON.stringify(f.host)}, port: 8000, localAddress: locals[i % 3] });
    let body = '';
    s.on('connect', () => s.write('GET /who HTTP/1.0\\r\\n'));
    s.on('data', (d) => (body += d));
    s.on('close', () => { out.push({ local: locals[i % 3], who: body.split('\\r\\n\\r\\n')[1] || 'error: ' + body }); if (out.length === 12) process.stdout.write(JSON.stringify(out)); });
    s.on('error', () => {});
    return s;
  });
  setTimeout(() => socks.forEach((s) => s.write('\\r\\n')), 3000);`;
        const p = spawn('nsenter', [`--net=/run/netns/${l.ns.client}`, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`held connections: exit ${code}`))));
      });
      const running = load(l, { url: f.url, locals: f.locals(l), ms: 4500, concurrency: 6 });
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = Date.now();
      expect(ok(lb(['--backend-del', f.name, '--backend', f.gone]))).toBe(
        'Applied: 1 changed, 1 Maglev table(s) swapped, 1 backend entries written.\n',
      );
      const t1 = Date.now();
      const records = await running;
      expect(Object.keys(tally(records)).sort()).toEqual(['b1', 'b2']);
      const after = records.filter((r) => r.start > t1);
      expect(after.length).toBeGreaterThan(50);
      expect(tally(after)).toEqual({ b1: after.length });
      expect(records.filter((r) => r.start < t0).some((r) => r.who === 'b2')).toBe(true);
      const kept = await held;
      expect(kept.every((k) => k.who === 'b1' || k.who === 'b2')).toBe(true);
      expect(kept.some((k) => k.who === 'b2')).toBe(true);
      const s = status(l);
      expect(s.vips[0].backends.find((b: { address: string }) => b.address === f.gone).removed).toBe(true);
    });
  }

  it('serves 1000 HTTP requests over IPv6 through the VIP, both backends evenly, none failing', async () => {
    const l = await setUp('native', [HTTP6]);
    expect(['b1', 'b2']).toContain(inNs(l.ns.client, 'curl', ['-s', '--max-time', '5', 'http://[fd00::10]:8000/who']));
    const records = await load(l, { url: 'http://[fd00::10]:8000/who', locals: l.clients6, count: 1000, concurrency: 8 });
    const t = tally(records);
    expect(Object.keys(t).sort()).toEqual(['b1', 'b2']);
    expect(Math.abs(t.b1 - 500) / 500).toBeLessThanOrEqual(0.15);
  });

  it('echoes UDP through a UDP VIP to both backends', async () => {
    const l = udpEchoLab();
    const script = `
const dgram = require('node:dgram');
const seen = {};
let n = 0;
(async () => {
  for (let i = 0; i < 60; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.bind(0, ${JSON.stringify(l.clients4)}[i % 3], r));
    const got = await new Promise((resolve) => {
      const t = setInterval(() => s.send('ping' + i, 53, '10.0.0.10'), 200);
      s.send('ping' + i, 53, '10.0.0.10');
      s.on('message', (m, from) => { clearInterval(t); resolve(m.toString() + '@' + from.address + ':' + from.port); });
    });
    s.close();
    const who = got.slice(0, 2);
    if (got === who + ':ping' + i + '@10.0.0.10:53') { seen[who] = (seen[who] || 0) + 1; n++; }
  }
  process.stdout.write(JSON.stringify({ n, seen }));
})();`;
    const out = JSON.parse(ok(run(process.execPath, ['-e', script], { netns: l.ns.client })));
    expect(out.n).toBe(60);
    expect(Object.keys(out.seen).sort()).toEqual(['b1', 'b2']);
  });

  it('echoes 4000-byte UDP datagrams, fragmented both ways, through the UDP VIP', async () => {
    const l = udpEchoLab();
    const script = `
const dgram = require('node:dgram');
const crypto = require('node:crypto');
let n = 0;
(async () => {
  for (let i = 0; i < 12; i++) {
    const data = crypto.randomBytes(4000);
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.bind(0, ${JSON.stringify(l.clients4)}[i % 3], r));
    const got = await new Promise((resolve) => {
      const t = setInterval(() => s.send(data, 53, '10.0.0.10'), 300);
      s.send(data, 53, '10.0.0.10');
      s.on('message', (m, from) => { clearInterval(t); resolve({ m, from }); });
    });
    s.close();
    if (got.m.length === 4003 && got.m.subarray(3).equals(data) && got.from.address === '10.0.0.10' && got.from.port === 53) n++;
  }
  process.stdout.write(JSON.stringify({ n }));
})();`;
    const out = JSON.parse(ok(run(process.execPath, ['-e', script], { netns: l.ns.client })));
    expect(out.n).toBe(12);
    const vip = status(l).vips[0];
    // Three fragments each way per datagram (4008 bytes of UDP at MTU 1500).
    expect(vip.counters.packets).toBeGreaterThanOrEqual(36);
    expect(vip.counters.reply_packets).toBeGreaterThanOrEqual(36);
  });
});
