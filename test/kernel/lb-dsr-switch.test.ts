// Switching a VIP's forwarding under established flows, under
// BPF_PROG_TEST_RUN through a real root array in a namespace of its own
// (real neighbours for the FIB lookups), every frame compared byte for byte
// with one built here. A flow goes on the way it started where it can: a
// NAT flow (its entry holds a NAT port) stays NAT, its replies and ICMP
// errors translated, after its VIP turned to DSR; a DSR flow goes on in
// another DSR mode (the inner packet is the same); a DSR flow whose VIP
// turned to NAT cannot (its backend knows it by the client's address) and
// starts over as a NAT flow, which the backend resets. Fragments follow
// their first one's way. One CPU, as RSS runs a flow.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testRun } from '../../src/libbpf/index.js';
import { ifNameToIndex } from '../../src/sys/netdev.js';
import { RootArray } from '../../src/root/array.js';
import { validateConfig } from '../../src/programs/lb/config.js';
import { applyConfig } from '../../src/programs/lb/apply.js';
import type { LbMaps } from '../../src/programs/lb/state.js';
import { vipStatus } from '../../src/programs/lb/status.js';
import { uniqueTag } from '../helpers/netns.js';
import { TCP, enterLabNamespace, fragments, frame, icmpError, parseFrame, sysctlIn, type L4Frame, loadLb, type LbInstance } from '../helpers/lb.js';
import { encapsulate, gueSport, pinToCpu } from '../helpers/encap.js';

const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 };
const SLOT = 7;
const LB_MAC = '02:00:00:00:00:10';
const MAC = { client: '02:00:00:00:00:01', b2: '02:00:00:00:00:02' };
const VIP = '10.0.0.100';
const NAT = '10.0.0.10';
const BACKEND = '10.0.0.2';

let leave: () => void;
let unpin: () => void;
let ifA = 0;

beforeAll(() => {
  const ns = `xls-${uniqueTag()}`;
  leave = enterLabNamespace(ns, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ...['lbA', 'lbAp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', '10.0.0.10/24', 'dev', 'lbA'],
    ['neigh', 'replace', '10.0.0.1', 'lladdr', MAC.client, 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', BACKEND, 'lladdr', MAC.b2, 'dev', 'lbA', 'nud', 'permanent'],
  ]);
  sysctlIn(ns, 'net.ipv4.conf.all.forwarding', '1');
  ifA = ifNameToIndex('lbA');
  expect(ifA).toBeGreaterThan(0);
  unpin = pinToCpu(0);
});
afterAll(() => {
  unpin?.();
  leave?.();
});

let lb: LbInstance | undefined;
let root: RootArray;
let fds: LbMaps;
beforeEach(() => {
  lb = loadLb(SLOT);
  ({ root, fds } = lb);
});
afterEach(() => lb?.close());

/** One VIP with one backend, forwarded `mode`'s way; the NAT source and
 *  the encapsulation source stay in the config whatever the mode. */
function mode(forwarding: 'nat' | 'dsr-l2' | 'ipip' | 'gue', vip: Record<string, unknown> = {}) {
  const c = validateConfig({
    nat: { source_ipv4: NAT }, encap_source_ipv4: NAT,
    vips: [{ address: VIP, port: 80, protocol: 'tcp', forwarding, backends: [{ address: BACKEND }], ...vip }],
  });
  return applyConfig(fds, c);
}
const run = (pkt: Buffer) => testRun(root.rootFd, pkt, 1, ifA);
const hex = (b: Buffer) => b.toString('hex');
const counters = () => vipStatus(fds)[0].counters;

const client = (sport: number, extra: Partial<L4Frame> = {}): L4Frame => ({
  src: '10.0.0.1', dst: VIP, sport, dport: 80, proto: 'tcp', flags: TCP.SYN, dstMac: LB_MAC, srcMac: MAC.client, ...extra,
});
const ack = (sport: number) => client(sport, { flags: TCP.ACK, seq: 2000, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
/** The client's packet as NAT sends it on: from the NAT source's port. */
const natted = (f: L4Frame, port: number): Buffer => frame({ ...f, src: NAT, sport: port, dst: BACKEND, srcMac: LB_MAC, dstMac: MAC.b2 });
const ipip = (f: L4Frame): Buffer => encapsulate(frame(f).subarray(14), { src: NAT, dst: BACKEND, srcMac: LB_MAC, dstMac: MAC.b2, kind: 'ipip' });

describe('a VIP switched from NAT to DSR', () => {
  it('keeps its NAT flows NAT until they end (packets, replies, ICMP errors); new flows go the new way', () => {
    expect(mode('nat')).toMatchObject({ vips_added: 1 });
    const first = run(frame(client(46000)));
    expect(first.retval).toBe(XDP.TX);
    const port = parseFrame(first.data).sport;
    expect(hex(first.data)).toBe(hex(natted(client(46000), port)));

    expect(mode('ipip')).toEqual({ vips_added: 0, vips_removed: 0, vips_changed: 1, tables_written: 0, backends_written: 0 });
    // Twice: the table's answer, then the flow cache's.
    for (let i = 0; i < 2; i++) {
      const r = run(frame(ack(46000)));
      expect([i, r.retval, hex(r.data)]).toEqual([i, XDP.TX, hex(natted(ack(46000), port))]);
    }
    // The backend's reply still comes back through the NAT entry.
    const reply: L4Frame = { src: BACKEND, dst: NAT, sport: 80, dport: port, proto: 'tcp', flags: TCP.ACK, srcMac: MAC.b2, dstMac: LB_MAC };
    const back = run(frame(reply));
    expect(back.retval).toBe(XDP.TX);
    expect(hex(back.data)).toBe(hex(frame({ ...reply, src: VIP, sport: 80, dst: '10.0.0.1', dport: 46000, srcMac: LB_MAC, dstMac: MAC.client })));
    // A router's "fragmentation needed" about that reply is translated to
    // the backend, about what the backend sent, not forwarded to it.
    const toClient: L4Frame = { src: VIP, dst: '10.0.0.1', sport: 80, dport: 46000, proto: 'tcp', flags: TCP.ACK, payload: Buffer.alloc(200, 7) };
    const err = run(icmpError({ src: '10.0.0.99', dst: VIP, srcMac: MAC.client, dstMac: LB_MAC, type: 3, code: 4, rest: 1400, quoted: frame(toClient).subarray(14) }));
    expect(err.retval).toBe(XDP.TX);
    const sent: L4Frame = { ...toClient, src: BACKEND, dst: NAT, dport: port };
    expect(hex(err.data)).toBe(hex(icmpError({ src: '10.0.0.99', dst: BACKEND, srcMac: LB_MAC, dstMac: MAC.b2, type: 3, code: 4, rest: 1400, quoted: frame(sent).subarray(14) })));

    // A new flow is encapsulated.
    const fresh = run(frame(client(46001)));
    expect(fresh.retval).toBe(XDP.TX);
    expect(hex(fresh.data)).toBe(hex(ipip(client(46001))));
    expect(counters()).toMatchObject({ packets: 4n, reply_packets: 1n, new_conns: 2n, conn_misses: 0n, encapsulated: 1n, icmp_errors: 1n, icmp_forwarded: 0n });
  });
});

describe('a VIP switched from DSR to NAT', () => {
  it('starts a DSR flow over as a NAT flow, whose backend\'s reset reaches the client at once', () => {
    mode('ipip');
    const first = run(frame(client(46100)));
    expect(hex(first.data)).toBe(hex(ipip(client(46100))));
    mode('nat');
    const r = run(frame(ack(46100)));
    expect(r.retval).toBe(XDP.TX);
    const port = parseFrame(r.data).sport;
    expect(port).toBeGreaterThanOrEqual(1024);
    expect(hex(r.data)).toBe(hex(natted(ack(46100), port)));
    // From then on a NAT flow like any other: the same port.
    const again = run(frame(ack(46100)));
    expect(hex(again.data)).toBe(hex(natted(ack(46100), port)));
    expect(counters()).toMatchObject({ new_conns: 2n, conn_misses: 1n, encapsulated: 1n });
    // The backend knows no such connection and resets it: the client hears.
    const rst: L4Frame = { src: BACKEND, dst: NAT, sport: 80, dport: port, proto: 'tcp', flags: TCP.RST, seq: 0, payload: Buffer.alloc(0), srcMac: MAC.b2, dstMac: LB_MAC };
    const back = run(frame(rst));
    expect(back.retval).toBe(XDP.TX);
    expect(hex(back.data)).toBe(hex(frame({ ...rst, src: VIP, sport: 80, dst: '10.0.0.1', dport: 46100, srcMac: LB_MAC, dstMac: MAC.client })));
    expect(fds.lb_conns.keys()).toHaveLength(0);
  });
});

describe('a VIP switched between DSR modes', () => {
  it('keeps its flows on their backend, sent the new way: dsr-l2, then ipip, then gue', () => {
    mode('dsr-l2');
    const f = client(46200);
    expect(hex(run(frame(f)).data)).toBe(hex(frame({ ...f, srcMac: LB_MAC, dstMac: MAC.b2 })));
    mode('ipip');
    expect(hex(run(frame(ack(46200))).data)).toBe(hex(ipip(ack(46200))));
    mode('gue');
    const r = run(frame(ack(46200)));
    const gue = encapsulate(frame(ack(46200)).subarray(14), { src: NAT, dst: BACKEND, srcMac: LB_MAC, dstMac: MAC.b2, kind: { guePort: 6080, sport: gueSport(ack(46200)) } });
    expect(hex(r.data)).toBe(hex(gue));
    expect(counters()).toMatchObject({ packets: 3n, new_conns: 1n, conn_misses: 0n, encapsulated: 2n });
  });
});

describe('fragments across a switch', () => {
  const dgram = (sport: number): L4Frame => ({ src: '10.0.0.1', dst: VIP, sport, dport: 53, proto: 'udp', dstMac: LB_MAC, srcMac: MAC.client, payload: Buffer.alloc(2500, 5) });
  const udp = (forwarding: 'nat' | 'gue') => mode(forwarding, { port: 53, protocol: 'udp' });

  it('follow a first fragment sent by NAT, NAT-rewritten, after the VIP turned to DSR', () => {
    udp('nat');
    const q = dgram(46300);
    const parts = fragments(frame(q), 1200, 0x4242);
    const head = run(parts[0]);
    expect(head.retval).toBe(XDP.TX);
    const port = parseFrame(head.data).sport;
    udp('gue');
    const expected = fragments(frame({ ...q, src: NAT, sport: port, dst: BACKEND, srcMac: LB_MAC, dstMac: MAC.b2 }), 1200, 0x4242);
    for (const i of [1, 2]) {
      const r = run(parts[i]);
      expect([i, r.retval, hex(r.data)]).toEqual([i, XDP.TX, hex(expected[i])]);
    }
    expect(counters()).toMatchObject({ packets: 3n, encapsulated: 0n });
  });

  it('of a datagram whose first fragment went by DSR are dropped once the VIP is NAT', () => {
    udp('gue');
    const parts = fragments(frame(dgram(46400)), 1200, 0x4343);
    expect(run(parts[0]).retval).toBe(XDP.TX);
    udp('nat');
    expect(run(parts[1]).retval).toBe(XDP.DROP);
  });
});
