// The load balancer under BPF_PROG_TEST_RUN, through a real root array, in a
// network namespace of its own whose routes and (permanent) neighbours feed
// bpf_fib_lookup. Every expected frame is built here from scratch, with its
// checksums computed independently, and compared byte for byte.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { BpfMap, MAP_TYPE, testRun } from '../../src/libbpf/index.js';
import { ifNameToIndex } from '../../src/sys/netdev.js';
import { maglevTable } from '../../src/programs/lb/maglev.js';
import { RootArray } from '../../src/root/array.js';
import { validateConfig, type LbConfig } from '../../src/programs/lb/config.js';
import { LAYOUT, LB_MAX_BACKENDS, PROTO, addrBytes, addrText, encodeVipKey, familyOf, u32 } from '../../src/programs/lb/layout.js';
import { VIP_BITS_WORDS, vipBits } from '../../src/programs/lb/vipbits.js';
import { kernelHz } from '../../src/programs/lb/clock.js';
import { applyConfig } from '../../src/programs/lb/apply.js';
import { readState, type LbMaps } from '../../src/programs/lb/state.js';
import { tableFill, vipStatus } from '../../src/programs/lb/status.js';
import { uniqueTag } from '../helpers/netns.js';
import { TCP, enterLabNamespace, fragments, frame, icmpError, parseFrame, sysctlIn, type L4Frame, loadLb, type LbInstance } from '../helpers/lb.js';

const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 };
const SLOT = 7;
const LB_MAC = '02:00:00:00:00:10';
const MAC = { client: '02:00:00:00:00:01', b2: '02:00:00:00:00:02', b3: '02:00:00:00:00:03', far: '02:00:00:00:01:02' };

let leave: () => void;
let ifA = 0;

beforeAll(() => {
  const ns = `xlk-${uniqueTag()}`;
  leave = enterLabNamespace(ns, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ['link', 'add', 'lbB', 'address', '02:00:00:00:01:10', 'type', 'veth', 'peer', 'name', 'lbBp'],
    ...['lbA', 'lbAp', 'lbB', 'lbBp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', '10.0.0.10/24', 'dev', 'lbA'],
    ['addr', 'add', 'fd00::10/64', 'dev', 'lbA', 'nodad'],
    ['addr', 'add', '10.1.0.10/24', 'dev', 'lbB'],
    ['neigh', 'replace', '10.0.0.1', 'lladdr', MAC.client, 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', '10.0.0.2', 'lladdr', MAC.b2, 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', '10.0.0.3', 'lladdr', MAC.b3, 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', 'fd00::1', 'lladdr', MAC.client, 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', 'fd00::2', 'lladdr', MAC.b2, 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', '10.1.0.2', 'lladdr', MAC.far, 'dev', 'lbB', 'nud', 'permanent'],
  ]);
  sysctlIn(ns, 'net.ipv4.conf.all.forwarding', '1');
  sysctlIn(ns, 'net.ipv6.conf.all.forwarding', '1');
  ifA = ifNameToIndex('lbA');
  expect(ifA).toBeGreaterThan(0);
});
afterAll(() => leave?.());

let lb: LbInstance | undefined;
let root: RootArray;
let fds: LbMaps;
beforeEach(() => {
  lb = loadLb(SLOT);
  ({ root, fds } = lb);
});
afterEach(() => lb?.close());

const BASE = {
  nat: { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' },
  vips: [
    { address: '10.0.0.10', port: 8000, protocol: 'tcp', backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }] },
  ],
};

function apply(config: unknown): LbConfig {
  const c = validateConfig(config);
  applyConfig(fds, c);
  return c;
}

const run = (pkt: Buffer) => testRun(root.rootFd, pkt, 1, ifA);

/** What a client's packet to the VIP should become, given the NAT port and
 *  backend the balancer chose. */
function forwarded(f: L4Frame, backend: string, natPort: number, backendPort: number, nat = '10.0.0.10'): Buffer {
  const macs: Record<string, string> = { '10.0.0.2': MAC.b2, '10.0.0.3': MAC.b3, 'fd00::2': MAC.b2 };
  return frame({ ...f, src: nat, sport: natPort, dst: backend, dport: backendPort, srcMac: LB_MAC, dstMac: macs[backend] });
}

const syn = (sport: number, extra: Partial<L4Frame> = {}): L4Frame => ({
  src: '10.0.0.1', dst: '10.0.0.10', sport, dport: 8000, proto: 'tcp', flags: TCP.SYN, dstMac: LB_MAC, srcMac: MAC.client, ...extra,
});

describe('load balancer data plane', () => {
  it('rewrites a SYN to the VIP exactly: NAT source and port, backend, MACs, checksums; XDP_TX', () => {
    apply(BASE);
    const f = syn(40001);
    const r = run(frame(f));
    expect(r.retval).toBe(XDP.TX);
    const out = parseFrame(r.data);
    expect(['10.0.0.2', '10.0.0.3']).toContain(out.dst);
    expect(out.sport).toBeGreaterThanOrEqual(1024);
    expect(out.sport).toBeLessThanOrEqual(32767);
    expect(r.data.toString('hex')).toBe(forwarded(f, out.dst, out.sport, 8000).toString('hex'));
    const [vip] = vipStatus(fds);
    expect(vip.counters).toMatchObject({ packets: 1n, bytes: BigInt(r.data.length), new_conns: 1n, conn_misses: 0n });
    const chosen = vip.backends.find((b) => b.address === out.dst)!;
    expect(chosen.counters).toMatchObject({ packets: 1n, new_conns: 1n });
    expect(root.counters(SLOT).packets.XDP_TX).toBe(1n);
  });

  it('rewrites the backend\'s reply back to VIP -> client', () => {
    apply(BASE);
    const out = parseFrame(run(frame(syn(40002))).data);
    const reply: L4Frame = {
      src: out.dst, dst: '10.0.0.10', sport: 8000, dport: out.sport, proto: 'tcp', flags: TCP.SYN | TCP.ACK,
      srcMac: out.dst === '10.0.0.2' ? MAC.b2 : MAC.b3, dstMac: LB_MAC, payload: Buffer.alloc(0),
    };
    const r = run(frame(reply));
    expect(r.retval).toBe(XDP.TX);
    const expected = frame({ ...reply, src: '10.0.0.10', sport: 8000, dst: '10.0.0.1', dport: 40002, srcMac: LB_MAC, dstMac: MAC.client });
    expect(r.data.toString('hex')).toBe(expected.toString('hex'));
    expect(vipStatus(fds)[0].counters).toMatchObject({ packets: 1n, reply_packets: 1n });
  });

  it('keeps an established flow on its backend across a backend-set change; new flows follow the table', () => {
    apply(BASE);
    const firsts = new Map<number, string>();
    for (let p = 41000; p < 41040; p++) firsts.set(p, parseFrame(run(frame(syn(p))).data).dst);
    // Replace 10.0.0.3 by three new backends: many flows would now hash elsewhere.
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2' }, { address: '10.0.0.4' }, { address: '10.0.0.5' }, { address: '10.0.0.6' }] }] });
    for (const [p, dst] of firsts) {
      const ack = run(frame(syn(p, { flags: TCP.ACK })));
      expect([p, parseFrame(ack.data).dst]).toEqual([p, dst]);
    }
    // A new flow never goes to the removed backend.
    const fresh = new Set<string>();
    for (let p = 42000; p < 42100; p++) fresh.add(parseFrame(run(frame(syn(p))).data).dst);
    expect(fresh.has('10.0.0.3')).toBe(false);
    expect(fresh.size).toBeGreaterThan(1);
    const removed = vipStatus(fds)[0].backends.find((b) => b.address === '10.0.0.3')!;
    expect(removed.removed).toBe(true);
  });

  it('weight 0 drains: no new flows, established ones stay', () => {
    apply(BASE);
    let onB3 = 0;
    for (let p = 43000; p < 43100 && !onB3; p++) if (parseFrame(run(frame(syn(p))).data).dst === '10.0.0.3') onB3 = p;
    expect(onB3).toBeGreaterThan(0);
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3', weight: 0 }] }] });
    for (let p = 44000; p < 44200; p++) expect(parseFrame(run(frame(syn(p))).data).dst).toBe('10.0.0.2');
    expect(parseFrame(run(frame(syn(onB3, { flags: TCP.ACK }))).data).dst).toBe('10.0.0.3');
  });

  it('drops new flows when every backend is drained, and counts them', () => {
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2', weight: 0 }] }] });
    expect(run(frame(syn(45000))).retval).toBe(XDP.DROP);
    expect(vipStatus(fds)[0].counters).toMatchObject({ packets: 1n, no_backend: 1n, new_conns: 0n });
  });

  it('balances UDP, with and without an IPv4 UDP checksum', () => {
    apply({ ...BASE, vips: [{ address: '10.0.0.10', port: 53, protocol: 'udp', backends: [{ address: '10.0.0.2', port: 5353 }] }] });
    for (const noUdpChecksum of [false, true]) {
      const f: L4Frame = { src: '10.0.0.1', dst: '10.0.0.10', sport: 46000 + Number(noUdpChecksum), dport: 53, proto: 'udp', dstMac: LB_MAC, srcMac: MAC.client, noUdpChecksum };
      const r = run(frame(f));
      expect(r.retval).toBe(XDP.TX);
      const out = parseFrame(r.data);
      expect(r.data.toString('hex')).toBe(forwarded(f, '10.0.0.2', out.sport, 5353).toString('hex'));
      expect(r.data.readUInt16BE(14 + 20 + 6) === 0).toBe(noUdpChecksum);
      const back = frame({ src: '10.0.0.2', dst: '10.0.0.10', sport: 5353, dport: out.sport, proto: 'udp', srcMac: MAC.b2, dstMac: LB_MAC, noUdpChecksum });
      const rr = run(back);
      expect(rr.retval).toBe(XDP.TX);
      expect(rr.data.toString('hex')).toBe(
        frame({ src: '10.0.0.10', dst: '10.0.0.1', sport: 53, dport: f.sport, proto: 'udp', srcMac: LB_MAC, dstMac: MAC.client, noUdpChecksum }).toString('hex'),
      );
    }
  });

  for (const proto of ['tcp', 'udp'] as const) {
    it(`balances IPv6 ${proto} and rewrites the reply back`, () => {
      apply({ ...BASE, vips: [{ address: 'fd00::10', port: 8000, protocol: proto, backends: [{ address: 'fd00::2' }] }] });
      const f: L4Frame = { src: 'fd00::1', dst: 'fd00::10', sport: 47000, dport: 8000, proto, flags: TCP.SYN, dstMac: LB_MAC, srcMac: MAC.client };
      const r = run(frame(f));
      expect(r.retval).toBe(XDP.TX);
      const natPort = r.data.readUInt16BE(54);
      expect(r.data.toString('hex')).toBe(forwarded(f, 'fd00::2', natPort, 8000, 'fd00::10').toString('hex'));
      const reply: L4Frame = { src: 'fd00::2', dst: 'fd00::10', sport: 8000, dport: natPort, proto, flags: TCP.SYN | TCP.ACK, srcMac: MAC.b2, dstMac: LB_MAC };
      const rr = run(frame(reply));
      expect(rr.retval).toBe(XDP.TX);
      expect(rr.data.toString('hex')).toBe(frame({ ...reply, src: 'fd00::10', sport: 8000, dst: 'fd00::1', dport: 47000, srcMac: LB_MAC, dstMac: MAC.client }).toString('hex'));
    });
  }

  it('leaves traffic that is not for a VIP untouched (and passes it on)', () => {
    apply(BASE);
    const others = [
      frame(syn(48000, { dport: 8001 })), // other port
      frame(syn(48000, { dst: '10.0.0.11' })), // other address
      frame({ ...syn(48000), proto: 'udp' }), // other protocol
      frame({ src: '10.0.0.2', dst: '10.0.0.10', sport: 8000, dport: 5000, proto: 'tcp', flags: TCP.ACK }), // untracked "reply"
      frame({ src: 'fd00::1', dst: 'fd00::10', sport: 1, dport: 8000, proto: 'tcp' }), // no IPv6 VIP
    ];
    for (const pkt of others) {
      const r = run(pkt);
      expect(r.retval).toBe(XDP.PASS);
      expect(r.data.equals(pkt)).toBe(true);
    }
    expect(root.counters(SLOT).packets.XDP_PASS).toBe(BigInt(others.length));
    expect(vipStatus(fds)[0].counters.packets).toBe(0n);
  });

  it('redirects to another interface when the FIB says so', () => {
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.1.0.2' }] }] });
    const f = syn(49000);
    const r = run(frame(f));
    expect(r.retval).toBe(XDP.REDIRECT);
    const out = parseFrame(r.data);
    expect(out).toMatchObject({ dst: '10.1.0.2', srcMac: '02:00:00:00:01:10', dstMac: MAC.far });
  });

  it('passes the rewritten packet up to the kernel when the neighbour is not resolved yet', () => {
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.99' }] }] });
    const f = syn(49100);
    const r = run(frame(f));
    expect(r.retval).toBe(XDP.PASS);
    const out = parseFrame(r.data);
    expect(out).toMatchObject({ dst: '10.0.0.99', src: '10.0.0.10' });
    expect(r.data.subarray(12).toString('hex')).toBe(frame({ ...f, src: '10.0.0.10', sport: out.sport, dst: '10.0.0.99' }).subarray(12).toString('hex'));
    expect(vipStatus(fds)[0].counters).toMatchObject({ fib_no_neigh: 1n, fib_failures: 0n });
  });

  it('uses an explicitly configured backend MAC without a FIB lookup', () => {
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.77', mac: '02:aa:bb:cc:dd:ee' }] }] });
    const r = run(frame(syn(49200)));
    expect(r.retval).toBe(XDP.TX);
    expect(parseFrame(r.data)).toMatchObject({ dst: '10.0.0.77', srcMac: LB_MAC, dstMac: '02:aa:bb:cc:dd:ee' });
  });

  it('gives thousands of flows unique NAT ports per backend', () => {
    apply(BASE);
    const seen = new Map<string, Set<number>>();
    const N = 4000;
    for (let i = 0; i < N; i++) {
      const client = `10.0.${100 + (i % 50)}.${1 + Math.floor(i / 50)}`;
      const out = parseFrame(run(frame(syn(50000 + (i % 7), { src: client }))).data);
      if (!seen.has(out.dst)) seen.set(out.dst, new Set());
      const ports = seen.get(out.dst)!;
      expect(ports.has(out.sport)).toBe(false);
      ports.add(out.sport);
    }
    expect([...seen.values()].reduce((a, s) => a + s.size, 0)).toBe(N);
    expect(fds.lb_nat.keys()).toHaveLength(N);
    expect(fds.lb_conns.keys()).toHaveLength(N);
    expect(tableFill(fds)).toEqual({ connections: N, connections_max: 262144, nat_ports: N, nat_ports_max: 262144 });
    expect(vipStatus(fds)[0].counters).toMatchObject({ new_conns: BigInt(N), nat_exhausted: 0n });
  });

  it('releases a NAT port on RST, and counts exhaustion when the range is full', () => {
    apply({ ...BASE, nat: { ...BASE.nat, port_min: 20000, port_max: 20000 }, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2' }] }] });
    expect(parseFrame(run(frame(syn(51000))).data).sport).toBe(20000);
    expect(run(frame(syn(51001))).retval).toBe(XDP.DROP); // the only port is taken
    expect(vipStatus(fds)[0].counters.nat_exhausted).toBe(1n);
    const rst = run(frame(syn(51000, { flags: TCP.RST | TCP.ACK })));
    expect(rst.retval).toBe(XDP.TX); // the RST itself still reaches the backend
    expect(fds.lb_nat.keys()).toHaveLength(0);
    expect(fds.lb_conns.keys()).toHaveLength(0);
    const again = run(frame(syn(51001)));
    expect(again.retval).toBe(XDP.TX);
    expect(parseFrame(again.data).sport).toBe(20000);
  });

  it('frees a closed flow\'s NAT port after time_wait_s (0 here): FIN both ways', () => {
    apply({ ...BASE, nat: { ...BASE.nat, port_min: 20000, port_max: 20000 }, timeouts: { time_wait_s: 0 },
      vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2' }] }] });
    const out = parseFrame(run(frame(syn(52000))).data);
    expect(out.sport).toBe(20000);
    expect(run(frame(syn(52001))).retval).toBe(XDP.DROP); // the only port is taken
    run(frame(syn(52000, { flags: TCP.FIN | TCP.ACK })));
    run(frame({ src: '10.0.0.2', dst: '10.0.0.10', sport: 8000, dport: 20000, proto: 'tcp', flags: TCP.FIN | TCP.ACK }));
    const again = run(frame(syn(52001)));
    expect(again.retval).toBe(XDP.TX);
    expect(parseFrame(again.data).sport).toBe(20000);
  });

  it('reads back the config it applied, and writes nothing when applied again', () => {
    const c = apply(BASE);
    expect(readState(fds).config).toEqual(c);
    expect(applyConfig(fds, c)).toEqual({ vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: 0, backends_written: 0 });
    const vipKey = fds.lb_vips.keys()[0];
    expect(addrText(vipKey.subarray(0, 16), 4)).toBe('10.0.0.10');
    expect(fds.lb_maglev.lookup(u32(0))).not.toBeNull();
  });
  it('holds in the kernel exactly the Maglev table computed in TypeScript, swapped whole on a change', () => {
    const c = apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2', weight: 2 }, { address: '10.0.0.3' }, { address: '10.0.0.4' }] }] });
    const kernelTable = () => {
      const inner = BpfMap.byId(fds.lb_maglev.lookup(u32(0))!.readUInt32LE(0))!;
      try {
        expect(inner.maxEntries).toBe(65537);
        const raw = inner.values(65537);
        // Each entry's backend (struct lb_slot's cur), 0xffff for none as maglev.ts's NO_BACKEND.
        return { id: inner.id, table: Uint32Array.from({ length: 65537 }, (_, i) => (raw.readUInt16LE(i * 8) === 0xffff ? 0xffffffff : raw.readUInt16LE(i * 8))) };
      } finally {
        inner.close();
      }
    };
    const ids = new Map([...readState(fds).backends.entries()].map(([id, b]) => [b.address, id]));
    const expected = maglevTable(c.vips[0].backends.map((b) => ({ id: ids.get(b.address)!, key: `${b.address}:${b.port}`, weight: b.weight })));
    const before = kernelTable();
    expect(before.table).toEqual(expected);
    apply({ ...BASE, vips: [{ ...BASE.vips[0], backends: [{ address: '10.0.0.2', weight: 2 }, { address: '10.0.0.3' }] }] });
    const after = kernelTable();
    expect(after.id).not.toBe(before.id); // a new map, not the old one written over
    expect(after.table).toEqual(maglevTable([{ id: ids.get('10.0.0.2')!, key: '10.0.0.2:8000', weight: 2 }, { id: ids.get('10.0.0.3')!, key: '10.0.0.3:8000', weight: 1 }]));
  });

  it('finds every VIP by the bit TypeScript sets for it, and by its id; both cleared with the VIP', () => {
    const vips = Array.from({ length: 200 }, (_, i) => i % 2
      ? { address: `fd09::${i.toString(16)}`, port: 1000 + i, protocol: i % 4 === 1 ? 'udp' : 'tcp', backends: [{ address: 'fd00::2' }] }
      : { address: `10.9.${i >> 8}.${i & 255}`, port: 1000 + i, protocol: i % 4 === 0 ? 'udp' : 'tcp', backends: [{ address: '10.0.0.2' }] });
    const c = apply({ ...BASE, vips });
    const keys = c.vips.map(encodeVipKey);
    expect(fds.lb_vip_bits.values(VIP_BITS_WORDS).equals(vipBits(keys))).toBe(true);
    const ids = fds.lb_vip_ids.values(512);
    for (const [, v] of readState(fds).vips) {
      expect(ids.subarray(v.id * LAYOUT.lb_vip_key.size, (v.id + 1) * LAYOUT.lb_vip_key.size).equals(v.key)).toBe(true);
    }
    c.vips.forEach((v, i) => {
      const six = v.address.includes(':');
      const r = run(frame({ src: six ? 'fd00::1' : '10.0.0.1', dst: v.address, sport: 30000 + i, dport: v.port, proto: v.protocol,
        flags: TCP.SYN, dstMac: LB_MAC, srcMac: MAC.client, payload: Buffer.alloc(0) }));
      expect([v.address, v.port, v.protocol, r.retval]).toEqual([v.address, v.port, v.protocol, XDP.TX]);
      expect(parseFrame(r.data).dst).toBe(six ? 'fd00:0:0:0:0:0:0:2' : '10.0.0.2');
    });
    apply({ ...BASE, vips: [] });
    expect(fds.lb_vip_bits.values(VIP_BITS_WORDS).equals(Buffer.alloc(VIP_BITS_WORDS * 8))).toBe(true);
    expect(fds.lb_vip_ids.values(512).equals(Buffer.alloc(512 * LAYOUT.lb_vip_key.size))).toBe(true);
  });

  it('lets a tracked flow idle out after tcp_idle_s on the kernel\'s jiffies', () => {
    expect(kernelHz()).toBeGreaterThan(0); // this kernel's config says CONFIG_HZ
    apply({ ...BASE, timeouts: { tcp_idle_s: 1 } });
    expect(fds.lb_config.lookup(u32(0))!.readUInt32LE(LAYOUT.lb_config.hz)).toBe(kernelHz());
    const ack = () => run(frame(syn(54000, { flags: TCP.ACK })));
    expect(run(frame(syn(54000))).retval).toBe(XDP.TX);
    expect(ack().retval).toBe(XDP.TX);
    expect(vipStatus(fds)[0].counters).toMatchObject({ packets: 2n, new_conns: 1n, conn_misses: 0n });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1300);
    expect(ack().retval).toBe(XDP.TX); // still served, as a flow it no longer knows
    expect(vipStatus(fds)[0].counters).toMatchObject({ packets: 3n, new_conns: 2n, conn_misses: 1n });
  });

  it('keeps a flow alive on its backend\'s replies alone (touched once a tick)', () => {
    apply({ ...BASE, timeouts: { tcp_idle_s: 1 } });
    const out = parseFrame(run(frame(syn(54100))).data);
    const reply = frame({ src: out.dst, dst: '10.0.0.10', sport: 8000, dport: out.sport, proto: 'tcp', flags: TCP.ACK });
    for (let i = 0; i < 6; i++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      // Several replies in one tick: the first touches the flow, the rest skip.
      for (let j = 0; j < 3; j++) expect(run(reply).retval).toBe(XDP.TX);
    }
    const ack = run(frame(syn(54100, { flags: TCP.ACK })));
    expect(parseFrame(ack.data)).toMatchObject({ dst: out.dst, sport: out.sport });
    expect(vipStatus(fds)[0].counters).toMatchObject({ packets: 2n, reply_packets: 18n, new_conns: 1n, conn_misses: 0n });
  });

  it('answers a flow\'s packets from the per-CPU cache within a tick, and from the table after it', () => {
    apply(BASE);
    const key = Buffer.alloc(LAYOUT.lb_flow.size);
    addrBytes('10.0.0.1').copy(key, LAYOUT.lb_flow.src);
    addrBytes('10.0.0.10').copy(key, LAYOUT.lb_flow.dst);
    key.writeUInt16BE(54200, LAYOUT.lb_flow.sport);
    key.writeUInt16BE(8000, LAYOUT.lb_flow.dport);
    key[LAYOUT.lb_flow.proto] = PROTO.tcp;
    key[LAYOUT.lb_flow.family] = familyOf('10.0.0.1');
    const ack = frame(syn(54200, { flags: TCP.ACK }));
    const misses = () => vipStatus(fds)[0].counters.conn_misses;
    run(frame(syn(54200)));
    // The table entry goes between two packets: in the same tick the second
    // is still served as the flow it was (a tick boundary in between makes
    // it a miss, and the attempt is made again).
    let cached = false;
    for (let attempt = 0; attempt < 20 && !cached; attempt++) {
      const before = misses(); // slow (reads every row): not between the packets
      const first = parseFrame(run(ack).data);
      fds.lb_conns.delete(key);
      const second = run(ack);
      cached = misses() === before;
      if (cached) expect(parseFrame(second.data)).toMatchObject({ dst: first.dst, sport: first.sport });
    }
    expect(cached).toBe(true);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30); // past the tick, at HZ 100 or more
    const before = misses();
    expect(run(ack).retval).toBe(XDP.TX);
    expect(misses()).toBe(before + 1n);
  });

  it('changes a VIP\'s table size both ways, and forgets a removed VIP', () => {
    apply(BASE);
    for (const table_size of [7, 131071, 65537]) {
      apply({ ...BASE, vips: [{ ...BASE.vips[0], table_size }] });
      expect(vipStatus(fds)[0].table_size).toBe(table_size);
      expect(run(frame(syn(53000 + table_size % 1000))).retval).toBe(XDP.TX);
    }
    expect(applyConfig(fds, validateConfig({ ...BASE, vips: [] }))).toMatchObject({ vips_removed: 1 });
    expect(readState(fds).backends.size).toBe(0);
    expect(fds.lb_maglev.lookup(u32(0))).toBeNull();
    const pkt = frame(syn(53999));
    const r = run(pkt);
    expect(r.retval).toBe(XDP.PASS);
    expect(r.data.equals(pkt)).toBe(true);
  });
});

describe('ICMP errors about balanced flows', () => {
  const ip = (f: L4Frame, bytes?: number) => frame(f).subarray(14, bytes === undefined ? undefined : 14 + bytes);
  const ROUTER4 = '10.0.0.99';
  const ROUTER6 = 'fd00::99';

  it('a router\'s "fragmentation needed" about a reply to the client goes to the backend, about its own packet', () => {
    apply(BASE);
    const out = parseFrame(run(frame(syn(55000))).data);
    const reply: L4Frame = { src: '10.0.0.10', dst: '10.0.0.1', sport: 8000, dport: 55000, proto: 'tcp', flags: TCP.ACK, payload: Buffer.alloc(1200, 7) };
    const r = run(icmpError({ src: ROUTER4, dst: '10.0.0.10', srcMac: MAC.client, dstMac: LB_MAC, type: 3, code: 4, rest: 1400, quoted: ip(reply) }));
    expect(r.retval).toBe(XDP.TX);
    const sent: L4Frame = { ...reply, src: out.dst, sport: 8000, dst: '10.0.0.10', dport: out.sport };
    const macs: Record<string, string> = { '10.0.0.2': MAC.b2, '10.0.0.3': MAC.b3 };
    const expected = icmpError({ src: ROUTER4, dst: out.dst, srcMac: LB_MAC, dstMac: macs[out.dst], type: 3, code: 4, rest: 1400, quoted: ip(sent) });
    expect(r.data.toString('hex')).toBe(expected.toString('hex'));
    expect(vipStatus(fds)[0].counters.icmp_errors).toBe(1n);
  });

  it('an IPv6 Packet Too Big about a reply goes to the backend (pseudo-header checksum)', () => {
    apply({ ...BASE, vips: [{ address: 'fd00::10', port: 8000, protocol: 'tcp', backends: [{ address: 'fd00::2' }] }] });
    const out = parseFrame(run(frame({ ...syn(55100), src: 'fd00::1', dst: 'fd00::10' })).data);
    const reply: L4Frame = { src: 'fd00::10', dst: 'fd00::1', sport: 8000, dport: 55100, proto: 'tcp', flags: TCP.ACK, payload: Buffer.alloc(1300, 9) };
    const r = run(icmpError({ src: ROUTER6, dst: 'fd00::10', srcMac: MAC.client, dstMac: LB_MAC, type: 2, code: 0, rest: 1280, quoted: ip(reply) }));
    expect(r.retval).toBe(XDP.TX);
    const sent: L4Frame = { ...reply, src: 'fd00::2', dst: 'fd00::10', dport: out.sport };
    const expected = icmpError({ src: ROUTER6, dst: 'fd00::2', srcMac: LB_MAC, dstMac: MAC.b2, type: 2, code: 0, rest: 1280, quoted: ip(sent) });
    expect(r.data.toString('hex')).toBe(expected.toString('hex'));
  });

  it('the backend\'s "port unreachable" goes to the client from the VIP, about the client\'s own datagram', () => {
    apply({ ...BASE, vips: [{ address: '10.0.0.10', port: 53, protocol: 'udp', backends: [{ address: '10.0.0.2', port: 5353 }] }] });
    const q: L4Frame = { src: '10.0.0.1', dst: '10.0.0.10', sport: 55200, dport: 53, proto: 'udp', dstMac: LB_MAC, srcMac: MAC.client };
    const out = parseFrame(run(frame(q)).data);
    const forwarded: L4Frame = { ...q, src: '10.0.0.10', sport: out.sport, dst: '10.0.0.2', dport: 5353 };
    const r = run(icmpError({ src: '10.0.0.2', dst: '10.0.0.10', srcMac: MAC.b2, dstMac: LB_MAC, type: 3, code: 3, quoted: ip(forwarded) }));
    expect(r.retval).toBe(XDP.TX);
    const expected = icmpError({ src: '10.0.0.10', dst: '10.0.0.1', srcMac: LB_MAC, dstMac: MAC.client, type: 3, code: 3, quoted: ip(q) });
    expect(r.data.toString('hex')).toBe(expected.toString('hex'));
    expect(vipStatus(fds)[0].counters.icmp_errors).toBe(1n);
  });

  it('an IPv6 router\'s "time exceeded" quoting only 8 bytes of TCP goes to the client, from the router', () => {
    apply({ ...BASE, vips: [{ address: 'fd00::10', port: 8000, protocol: 'tcp', backends: [{ address: 'fd00::2' }] }] });
    const s6: L4Frame = { ...syn(55300), src: 'fd00::1', dst: 'fd00::10' };
    const out = parseFrame(run(frame(s6)).data);
    const forwarded: L4Frame = { ...s6, src: 'fd00::10', sport: out.sport, dst: 'fd00::2' };
    const r = run(icmpError({ src: ROUTER6, dst: 'fd00::10', srcMac: MAC.b2, dstMac: LB_MAC, type: 3, code: 0, quoted: ip(forwarded, 48) }));
    expect(r.retval).toBe(XDP.TX);
    const expected = icmpError({ src: ROUTER6, dst: 'fd00::1', srcMac: LB_MAC, dstMac: MAC.client, type: 3, code: 0, quoted: ip(s6, 48) });
    expect(r.data.toString('hex')).toBe(expected.toString('hex'));
  });

  it('passes untouched an error about no tracked flow, and ICMP that is not an error', () => {
    apply(BASE);
    const stray = icmpError({ src: ROUTER4, dst: '10.0.0.10', dstMac: LB_MAC, type: 3, code: 4, rest: 1400,
      quoted: ip({ src: '10.0.0.10', dst: '10.0.0.1', sport: 8000, dport: 55999, proto: 'tcp', flags: TCP.ACK }) });
    const echo = Buffer.from(stray);
    echo[34] = 8; // an echo request: same bytes otherwise (checksum not even right)
    for (const pkt of [stray, echo]) {
      const r = run(pkt);
      expect(r.retval).toBe(XDP.PASS);
      expect(r.data.equals(pkt)).toBe(true);
    }
    expect(vipStatus(fds)[0].counters.icmp_errors).toBe(0n);
  });
});

describe('fragments of balanced flows', () => {
  const UDP_VIP = { address: '10.0.0.10', port: 53, protocol: 'udp', backends: [{ address: '10.0.0.2', port: 5353 }] };
  const big = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));

  /** Every fragment through the balancer, with its verdict and bytes. */
  const through = (frags: Buffer[]) => frags.map((f) => {
    const r = run(f);
    return { retval: r.retval, hex: r.data.toString('hex') };
  });

  it('sends every fragment of a datagram after its first, rewritten, checksums exact (IPv4 UDP both ways)', () => {
    apply({ ...BASE, vips: [UDP_VIP] });
    const q: L4Frame = { src: '10.0.0.1', dst: '10.0.0.10', sport: 56000, dport: 53, proto: 'udp', payload: big, srcMac: MAC.client, dstMac: LB_MAC };
    const sent = through(fragments(frame(q), 1480, 0x1111));
    const first = parseFrame(Buffer.from(sent[0].hex, 'hex'));
    const forwarded: L4Frame = { ...q, src: '10.0.0.10', sport: first.sport, dst: '10.0.0.2', dport: 5353, srcMac: LB_MAC, dstMac: MAC.b2 };
    expect(sent).toEqual(fragments(frame(forwarded), 1480, 0x1111).map((f) => ({ retval: XDP.TX, hex: f.toString('hex') })));
    const reply: L4Frame = { src: '10.0.0.2', dst: '10.0.0.10', sport: 5353, dport: first.sport, proto: 'udp', payload: big, srcMac: MAC.b2, dstMac: LB_MAC };
    const back = through(fragments(frame(reply), 1480, 0x2222));
    const expected: L4Frame = { ...reply, src: '10.0.0.10', sport: 53, dst: '10.0.0.1', dport: 56000, srcMac: LB_MAC, dstMac: MAC.client };
    expect(back).toEqual(fragments(frame(expected), 1480, 0x2222).map((f) => ({ retval: XDP.TX, hex: f.toString('hex') })));
    expect(vipStatus(fds)[0].counters).toMatchObject({ packets: 3n, reply_packets: 3n, new_conns: 1n });
  });

  it('does the same with IPv6 Fragment headers (TCP)', () => {
    apply({ ...BASE, vips: [{ address: 'fd00::10', port: 8000, protocol: 'tcp', backends: [{ address: 'fd00::2' }] }] });
    const s6: L4Frame = { ...syn(56100, { flags: TCP.ACK }), src: 'fd00::1', dst: 'fd00::10', payload: big };
    const nport = parseFrame(run(frame({ ...s6, flags: TCP.SYN, payload: Buffer.alloc(0) })).data).sport;
    const sent = through(fragments(frame(s6), 1232, 0x3333));
    const forwarded: L4Frame = { ...s6, src: 'fd00::10', sport: nport, dst: 'fd00::2', srcMac: LB_MAC, dstMac: MAC.b2 };
    expect(sent).toEqual(fragments(frame(forwarded), 1232, 0x3333).map((f) => ({ retval: XDP.TX, hex: f.toString('hex') })));
  });

  it('passes untouched a later fragment whose first one it has not seen', () => {
    apply({ ...BASE, vips: [UDP_VIP] });
    const q: L4Frame = { src: '10.0.0.1', dst: '10.0.0.10', sport: 56200, dport: 53, proto: 'udp', payload: big, dstMac: LB_MAC };
    for (const f of fragments(frame(q), 1480, 0x4444).slice(1)) {
      const r = run(f);
      expect(r.retval).toBe(XDP.PASS);
      expect(r.data.equals(f)).toBe(true);
    }
    expect(vipStatus(fds)[0].counters.packets).toBe(0n);
  });
});

describe('load balancer apply', () => {
  const A = { address: '10.0.0.10', port: 8000, protocol: 'tcp' };
  const B = { address: '10.0.0.11', port: 8000, protocol: 'tcp' };
  const two = (a: unknown[], b: unknown[] | null = [{ address: '10.0.0.4' }], nat: object = {}) => ({
    ...BASE, nat: { ...BASE.nat, ...nat }, vips: [{ ...A, backends: a }, ...(b ? [{ ...B, backends: b }] : [])],
  });
  const applied = (config: unknown) => applyConfig(fds, validateConfig(config));
  const zero = { vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: 0, backends_written: 0 };
  /** Backend id -> [VIP id, address, weight, removed, mac]. */
  const backends = () => [...readState(fds).backends].map(([id, b]) => [id, b.vipId, b.address, b.weight, b.removed, b.mac ?? null]);
  const tableId = (vipId: number) => {
    const inner = BpfMap.byId(fds.lb_maglev.lookup(u32(vipId))!.readUInt32LE(0))!;
    try {
      return inner.id;
    } finally {
      inner.close();
    }
  };

  it('writes only the difference, and counts what it wrote', () => {
    expect(applied(two([{ address: '10.0.0.2' }, { address: '10.0.0.3' }]))).toEqual({ ...zero, vips_added: 2, tables_written: 2, backends_written: 3 });
    expect(backends()).toEqual([[0, 0, '10.0.0.2', 1, false, null], [1, 0, '10.0.0.3', 1, false, null], [2, 1, '10.0.0.4', 1, false, null]]);
    const tableB = tableId(1);
    // One weight: one entry, one table; the other VIP's table stays.
    expect(applied(two([{ address: '10.0.0.2' }, { address: '10.0.0.3', weight: 5 }]))).toEqual({ ...zero, vips_changed: 1, tables_written: 1, backends_written: 1 });
    expect(backends()[1]).toEqual([1, 0, '10.0.0.3', 5, false, null]);
    expect(tableId(1)).toBe(tableB);
    // A MAC is not an input of the table; the order of the list is not either.
    expect(applied(two([{ address: '10.0.0.3', weight: 5 }, { address: '10.0.0.2', mac: '02:00:00:00:00:02' }]))).toEqual({ ...zero, backends_written: 1 });
    expect(backends()[0]).toEqual([0, 0, '10.0.0.2', 1, false, '02:00:00:00:00:02']);
    // Removed, a backend stays as a tombstone; added back, it has its id again.
    expect(applied(two([{ address: '10.0.0.2', mac: '02:00:00:00:00:02' }]))).toEqual({ ...zero, vips_changed: 1, tables_written: 1, backends_written: 1 });
    expect(backends()[1]).toEqual([1, 0, '10.0.0.3', 5, true, null]);
    expect(applied(two([{ address: '10.0.0.2', mac: '02:00:00:00:00:02' }, { address: '10.0.0.5' }]))).toMatchObject({ tables_written: 1, backends_written: 1 });
    expect(backends()[3]).toEqual([3, 0, '10.0.0.5', 1, false, null]);
    expect(applied(two([{ address: '10.0.0.2', mac: '02:00:00:00:00:02' }, { address: '10.0.0.5' }, { address: '10.0.0.3' }]))).toMatchObject({ tables_written: 1, backends_written: 1 });
    expect(backends()[1]).toEqual([1, 0, '10.0.0.3', 1, false, null]);
    // A removed VIP takes its table and backends along; a new one gets the
    // lowest ids free before the apply (those it frees are not reused by it).
    expect(applied(two([{ address: '10.0.0.2', mac: '02:00:00:00:00:02' }, { address: '10.0.0.5' }, { address: '10.0.0.3' }], null))).toEqual({ ...zero, vips_removed: 1 });
    expect(backends().map(([id]) => id)).toEqual([0, 1, 3]);
    expect(fds.lb_maglev.lookup(u32(1))).toBeNull();
    expect(applied({ ...BASE, vips: [{ ...B, backends: [{ address: '10.0.0.6' }, { address: '10.0.0.7' }] }] })).toEqual({ ...zero, vips_added: 1, vips_removed: 1, tables_written: 1, backends_written: 2 });
    expect(backends()).toEqual([[2, 1, '10.0.0.6', 1, false, null], [4, 1, '10.0.0.7', 1, false, null]]);
    expect(readState(fds).config.vips.map((v) => v.address)).toEqual(['10.0.0.11']);
  });

  it('undoes what it wrote when the kernel refuses a write, and closes every fd it opened', () => {
    applied(two([{ address: '10.0.0.2' }, { address: '10.0.0.3' }]));
    const before = readState(fds);
    const tableA = tableId(0);
    const openFds = readdirSync('/proc/self/fd').length;
    // lb_maglev read-only (BPF_F_RDONLY): the swap of the new table fails,
    // after the config and the backend entries were written.
    const readOnly = BpfMap.create(MAP_TYPE.ARRAY, 'lb_maglev_ro', 4, 4, 512, 1 << 3);
    try {
      const config = two([{ address: '10.0.0.2' }, { address: '10.0.0.8', weight: 3 }], [{ address: '10.0.0.4', weight: 2 }], { port_min: 2000 });
      expect(() => applyConfig({ ...fds, lb_maglev: readOnly }, validateConfig(config))).toThrow(/bpf_map_update_batch failed with EPERM/);
    } finally {
      readOnly.close();
    }
    const after = readState(fds);
    expect(after.config).toEqual(before.config);
    expect(after.backends).toEqual(before.backends);
    expect(after.configRaw).toEqual(before.configRaw);
    expect(tableId(0)).toBe(tableA);
    expect(readdirSync('/proc/self/fd').length).toBe(openFds);
  });

  it('refuses a config with no room for its backends, having written nothing', () => {
    const many = (first: number) => Array.from({ length: LB_MAX_BACKENDS }, (_, i) => ({ address: `10.${100 + ((first + i) >> 16)}.${((first + i) >> 8) & 255}.${(first + i) & 255}` }));
    const config = { ...BASE, vips: [{ ...A, table_size: 7, backends: many(0) }] };
    expect(applied(config)).toMatchObject({ backends_written: LB_MAX_BACKENDS });
    const before = readState(fds);
    // One backend replaced: the old one must stay as a tombstone, and there
    // is no id left for the new one.
    expect(() => applied({ ...config, vips: [{ ...config.vips[0], backends: many(1) }] })).toThrow(
      'no room for backend 10.100.64.0 port 8000 of VIP tcp:10.0.0.10:8000: at most 16384 backends, removed ones included',
    );
    expect(readState(fds).backends).toEqual(before.backends);
  });
});
