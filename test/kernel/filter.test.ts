// The filter in slot 2 of a real root array, driven with BPF_PROG_TEST_RUN:
// exact verdicts, counters, per-prefix hits and Packet Too Big frames
// compared byte for byte with frames built here.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testRun } from '../../src/libbpf/index.js';
import { XdplbError } from '../../src/errors.js';
import type { RootArray } from '../../src/root/array.js';
import { placeProgram } from '../../src/root/place.js';
import { pinnedRoot, type PinnedRoot } from '../helpers/pinned.js';
import { zeroCounts, type ActionCounts } from '../../src/root/stats.js';
import { FILTER, HINT6_BITS, PTB_WINDOW_LAYOUT, STATS, hint6Bucket } from '../../src/programs/filter/layout.js';
import { FilterMaps, type FilterStats } from '../../src/programs/filter/maps.js';
import { parsePrefix } from '../../src/programs/filter/prefix.js';
import { inetChecksum } from '../helpers/packets.js';
import {
  ETH_IPV4, ETH_IPV6, PROTO, eth, frag6, icmp6Checksum, ip4, ip6, ipv6, pattern, tcp, type EthOpts, type Ip4Opts,
} from '../helpers/frames.js';

const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3 };
const SLOT = 2;

let pinned: PinnedRoot;
let root: RootArray;
let maps: FilterMaps;

beforeEach(() => {
  pinned = pinnedRoot();
  root = pinned.root;
  placeProgram(FILTER, [pinned.iface], SLOT);
  maps = FilterMaps.open(pinned.iface);
});
afterEach(() => {
  maps?.close();
  pinned?.close();
});

const run = (pkt: Buffer) => testRun(root.rootFd, pkt);
const verdict = (pkt: Buffer) => run(pkt).retval;

function stats(values: Partial<FilterStats> = {}): FilterStats {
  return { ...(Object.fromEntries(STATS.map((s) => [s, 0n])) as FilterStats), ...values };
}
function slot(values: Partial<ActionCounts>): ActionCounts {
  return { ...zeroCounts(), ...values };
}
const config = (frags_drop: boolean, ptb_max_pps = 0) => maps.setConfig({ frags_drop, ptb_max_pps });
const drop = (...prefixes: string[]) => prefixes.forEach((p) => maps.add(parsePrefix(p), `tag ${p}`));
const hits = () => Object.fromEntries(maps.list().map((p) => [`${p.family === 4 ? [...p.addr].join('.') : p.addr.toString('hex')}/${p.len}`, p.hits]));

// ---- frames ----

function udp4Frame(o: Ip4Opts & { eth?: EthOpts; payload?: number } = {}): Buffer {
  const payload = pattern(o.payload ?? 64);
  return Buffer.concat([eth(ETH_IPV4, o.eth), ip4(payload.length, o), payload]);
}
function tcp4Frame(src = '192.0.2.1'): Buffer {
  return Buffer.concat([eth(ETH_IPV4), ip4(20, { src, proto: PROTO.TCP }), tcp()]);
}
function udp6Frame(src = '2001:db8::1', o: { eth?: EthOpts } = {}): Buffer {
  const payload = pattern(48);
  return Buffer.concat([eth(ETH_IPV6, o.eth), ip6(payload.length, { src }), payload]);
}
/** An IPv6 fragment: `data` bytes after the Fragment header. */
function frag6Frame(offset: number, more: boolean, data = 1232, o: { src?: string; ext?: Buffer; eth?: EthOpts; l4?: number } = {}): Buffer {
  const ext = o.ext ?? Buffer.alloc(0);
  const fh = frag6(o.l4 ?? PROTO.UDP, offset, more);
  const body = pattern(data, 3);
  const first = ext.length ? PROTO.HOPOPTS : PROTO.FRAGMENT;
  return Buffer.concat([eth(ETH_IPV6, o.eth), ip6(ext.length + fh.length + body.length, { src: o.src, nexthdr: first }), ext, fh, body]);
}

// ---- expected Packet Too Big frames, built from the RFCs ----

function swapMacs(l2: Buffer): Buffer {
  return Buffer.concat([l2.subarray(6, 12), l2.subarray(0, 6), l2.subarray(12)]);
}

/** RFC 792/1191: type 3 code 4, next-hop MTU, the IP header and 8 bytes. */
function expectedPtb4(orig: Buffer, l2len: number): Buffer {
  const ip = orig.subarray(l2len);
  const hlen = (ip[0] & 0xf) * 4;
  const icmp = Buffer.concat([Buffer.from([3, 4, 0, 0, 0, 0]), Buffer.from([ip[2], ip[3]]), ip.subarray(0, hlen + 8)]);
  icmp.writeUInt16BE(inetChecksum(icmp), 2);
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = 0xc0;
  h.writeUInt16BE(20 + icmp.length, 2);
  h[8] = 64;
  h[9] = PROTO.ICMP;
  ip.copy(h, 12, 16, 20);
  ip.copy(h, 16, 12, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([swapMacs(orig.subarray(0, l2len)), h, icmp]);
}

/** RFC 4443: type 2, MTU, as much of the packet as fits in 1280 bytes. */
function expectedPtb6(orig: Buffer, l2len: number): Buffer {
  const ip = orig.subarray(l2len);
  const size = 40 + ip.readUInt16BE(4);
  const icmp = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.alloc(4), ip.subarray(0, Math.min(size, 1280 - 48))]);
  icmp.writeUInt32BE(size, 4);
  const src = Buffer.from(ip.subarray(24, 40));
  const dst = Buffer.from(ip.subarray(8, 24));
  icmp.writeUInt16BE(icmp6Checksum(src, dst, icmp), 2);
  const h = ip6(icmp.length, { src, dst, nexthdr: PROTO.ICMPV6, hop: 64 });
  return Buffer.concat([swapMacs(orig.subarray(0, l2len)), h, icmp]);
}

describe('filter: clean traffic and malformed frames', () => {
  it('passes clean IPv4 TCP, IPv4 UDP and IPv6 UDP on to the next slot and counts nothing', () => {
    for (const pkt of [tcp4Frame(), udp4Frame(), udp6Frame()]) expect(verdict(pkt)).toBe(XDP.PASS);
    expect(maps.stats()).toEqual(stats());
    expect(root.counters(SLOT).packets).toEqual(slot({ XDP_PASS: 3n }));
    expect(root.totals().packets).toEqual(slot({ XDP_PASS: 3n }));
  });

  it('passes ARP and other EtherTypes untouched', () => {
    const arp = Buffer.concat([eth(0x0806), pattern(28)]);
    const r = run(arp);
    expect(r.retval).toBe(XDP.PASS);
    expect(r.data.equals(arp)).toBe(true);
    expect(maps.stats()).toEqual(stats());
  });

  it('drops a frame whose VLAN tag is cut off: eth_frame_err', () => {
    const cut8021q = eth(0x8100).subarray(0, 14);
    const cutQinQ = Buffer.concat([eth(0x88a8), Buffer.from([0x00, 0x05])]); // 2 of the tag's 4 bytes
    expect(verdict(cut8021q)).toBe(XDP.DROP);
    expect(verdict(cutQinQ)).toBe(XDP.DROP);
    expect(maps.stats()).toEqual(stats({ eth_frame_err: 2n }));
    expect(root.counters(SLOT).packets).toEqual(slot({ XDP_DROP: 2n }));
  });

  it('drops malformed IPv4: IHL < 5, total length beyond the frame, cut header, wrong version: ip_header_err', () => {
    const ihl4 = udp4Frame();
    ihl4[14] = 0x44;
    const long = udp4Frame();
    long.writeUInt16BE(long.length - 14 + 1, 16);
    const cut = udp4Frame().subarray(0, 14 + 19);
    const v6 = udp4Frame();
    v6[14] = 0x65;
    const options = udp4Frame({ options: pattern(8) });
    options[14] = 0x4f; // 60-byte header in a frame that has 28 + 72
    for (const pkt of [ihl4, long, cut, v6]) expect(verdict(pkt)).toBe(XDP.DROP);
    expect(verdict(options)).toBe(XDP.PASS); // IHL 15 still fits: 14 + 60 <= frame
    expect(maps.stats()).toEqual(stats({ ip_header_err: 4n }));
  });

  it('drops truncated IPv6: cut fixed header, payload length beyond the frame, cut extension header: ip6_header_err', () => {
    const cut = udp6Frame().subarray(0, 14 + 39);
    const long = udp6Frame();
    long.writeUInt16BE(long.length - 54 + 1, 18);
    config(true);
    // Hop-by-Hop header announced, but the frame ends one byte into it.
    const cutExt = Buffer.concat([eth(ETH_IPV6), ip6(1, { nexthdr: PROTO.HOPOPTS }), Buffer.from([PROTO.UDP])]);
    for (const pkt of [cut, long, cutExt]) expect(verdict(pkt)).toBe(XDP.DROP);
    expect(maps.stats()).toEqual(stats({ ip6_header_err: 3n }));
  });

  it('parses through 802.1Q and 802.1ad+802.1Q tags', () => {
    drop('192.0.2.1/32', '2001:db8::1/128');
    const q = { vlans: [[0x8100, 10]] as Array<[number, number]> };
    const qinq = { vlans: [[0x88a8, 100], [0x8100, 10]] as Array<[number, number]> };
    expect(verdict(udp4Frame({ eth: q }))).toBe(XDP.DROP);
    expect(verdict(udp4Frame({ eth: qinq }))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('2001:db8::1', { eth: qinq }))).toBe(XDP.DROP);
    expect(verdict(udp4Frame({ eth: qinq, src: '192.0.2.2' }))).toBe(XDP.PASS);
    expect(maps.stats()).toEqual(stats({ ip_drop_count: 2n, ip6_drop_count: 1n }));
  });
});

describe('filter: source drop lists', () => {
  it('longest prefix wins among overlapping prefixes, and each counts its own hits', () => {
    drop('10.0.0.0/8', '10.1.0.0/16', '10.1.2.3/32');
    expect(verdict(udp4Frame({ src: '10.1.2.3' }))).toBe(XDP.DROP);
    for (let i = 0; i < 2; i++) expect(verdict(udp4Frame({ src: '10.1.9.9' }))).toBe(XDP.DROP);
    for (let i = 0; i < 3; i++) expect(verdict(udp4Frame({ src: '10.200.0.1' }))).toBe(XDP.DROP);
    expect(verdict(udp4Frame({ src: '11.0.0.1' }))).toBe(XDP.PASS);
    expect(hits()).toEqual({ '10.0.0.0/8': 3n, '10.1.0.0/16': 2n, '10.1.2.3/32': 1n });
    expect(maps.stats()).toEqual(stats({ ip_drop_count: 6n }));
  });

  it('matches only the source: a listed destination passes', () => {
    drop('198.51.100.1/32');
    expect(verdict(udp4Frame({ src: '192.0.2.1', dst: '198.51.100.1' }))).toBe(XDP.PASS);
    expect(maps.stats()).toEqual(stats());
  });

  it('/0 drops every IPv4 source, and IPv4-mapped IPv6 sources with it, but no other IPv6', () => {
    drop('0.0.0.0/0');
    expect(verdict(udp4Frame({ src: '203.0.113.7' }))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('::ffff:cb00:7107'))).toBe(XDP.DROP); // ::ffff:203.0.113.7
    expect(verdict(udp6Frame('2001:db8::1'))).toBe(XDP.PASS);
    expect(hits()).toEqual({ '0.0.0.0/0': 2n });
    expect(maps.stats()).toEqual(stats({ ip_drop_count: 1n, ip6_drop_count: 1n }));
  });

  it('IPv6 /128, /32 and ::/0', () => {
    drop('2001:db8::1/128', '2001:db8::/32');
    expect(verdict(udp6Frame('2001:db8::1'))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('2001:db8:ffff::2'))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('2001:db9::1'))).toBe(XDP.PASS);
    expect(hits()).toEqual({ '20010db8000000000000000000000001/128': 1n, '20010db8000000000000000000000000/32': 1n });
    drop('::/0');
    expect(verdict(udp6Frame('2001:db9::1'))).toBe(XDP.DROP);
    expect(verdict(udp4Frame({ src: '10.0.0.1' }))).toBe(XDP.PASS);
    expect(maps.stats()).toEqual(stats({ ip6_drop_count: 3n }));
  });

  it('an IPv4 entry drops the IPv4-mapped IPv6 source too; ::ffff:a.b.c.d entries are stored as IPv4', () => {
    drop('10.1.2.3');
    maps.add(parsePrefix('::ffff:172.16.0.0/108'), 'mapped'); // = 172.16.0.0/12
    expect(verdict(udp6Frame('::ffff:a01:203'))).toBe(XDP.DROP); // ::ffff:10.1.2.3
    expect(verdict(udp6Frame('::ffff:a01:204'))).toBe(XDP.PASS); // ::ffff:10.1.2.4
    expect(verdict(udp4Frame({ src: '172.31.255.255' }))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('::ffff:ac10:1'))).toBe(XDP.DROP); // ::ffff:172.16.0.1
    expect(verdict(udp6Frame('::a01:203'))).toBe(XDP.PASS); // IPv4-compatible, not mapped
    expect(hits()).toEqual({ '10.1.2.3/32': 1n, '172.16.0.0/12': 2n });
    expect(maps.stats()).toEqual(stats({ ip_drop_count: 1n, ip6_drop_count: 2n }));
  });

  it('removing a prefix lets its sources through again; clearing empties both lists', () => {
    drop('192.0.2.0/24', '2001:db8::/32');
    expect(verdict(udp4Frame())).toBe(XDP.DROP);
    expect(maps.remove([parsePrefix('192.0.2.0/24')])).toHaveLength(1);
    expect(maps.remove([parsePrefix('192.0.2.0/24')])).toHaveLength(0);
    expect(verdict(udp4Frame())).toBe(XDP.PASS);
    expect(verdict(udp6Frame())).toBe(XDP.DROP);
    expect(maps.clearLists()).toBe(1);
    expect(verdict(udp6Frame())).toBe(XDP.PASS);
    expect(maps.list()).toEqual([]);
  });

  it('keeps the /16 hint in step: set where a prefix lies, cleared once no prefix covers the /16 any more', () => {
    const hint = (slash16: string) => {
      const [a, b] = slash16.split('.').map(Number);
      const key = Buffer.alloc(4);
      key.writeUInt32LE((a << 8) | b);
      return maps.maps.hint4.lookup(key)!.readUInt32LE(0);
    };
    drop('10.0.0.0/15', '10.0.5.0/24', '10.0.6.7');
    expect([hint('10.0'), hint('10.1'), hint('10.2'), hint('9.255')]).toEqual([1, 1, 0, 0]);
    // 10.0/16 stays: the /24 and the /32 still lie in it.
    maps.remove([parsePrefix('10.0.0.0/15')]);
    expect([hint('10.0'), hint('10.1')]).toEqual([1, 0]);
    expect(verdict(udp4Frame({ src: '10.0.5.1' }))).toBe(XDP.DROP);
    expect(verdict(udp4Frame({ src: '10.0.6.7' }))).toBe(XDP.DROP);
    expect(verdict(udp4Frame({ src: '10.1.0.1' }))).toBe(XDP.PASS);
    maps.remove([parsePrefix('10.0.5.0/24')]);
    expect(hint('10.0')).toBe(1);
    maps.remove([parsePrefix('10.0.6.7')]);
    expect(hint('10.0')).toBe(0);
    drop('0.0.0.0/0');
    expect([hint('0.0'), hint('128.77'), hint('255.255')]).toEqual([1, 1, 1]);
    expect(maps.clearLists()).toBe(1);
    expect([hint('0.0'), hint('128.77'), hint('255.255')]).toEqual([0, 0, 0]);
  });

  it('keeps the IPv6 hint in step: one bucket per /32, every bucket below /16, cleared with the last prefix', () => {
    const set = () => {
      const raw = maps.maps.hint6.values(1 << HINT6_BITS);
      return Array.from({ length: 1 << HINT6_BITS }, (_, i) => raw.readUInt32LE(i * 4)).flatMap((v, i) => (v ? [i] : []));
    };
    // One host: one bucket, the one TypeScript computes; the program finds
    // the source through it, so it hashes alike.
    drop('2001:db8:5::7/128');
    expect(set()).toEqual([hint6Bucket(0x20010db8)]);
    expect(verdict(udp6Frame('2001:db8:5::7'))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('2001:db8:5::8'))).toBe(XDP.PASS);
    // A /20 covers 4096 /32s.
    drop('2001::/20');
    const twenty = new Set(Array.from({ length: 4096 }, (_, i) => hint6Bucket(0x20010000 + i)));
    expect(set()).toEqual([...new Set([...twenty, hint6Bucket(0x20010db8)])].sort((a, b) => a - b));
    expect(verdict(udp6Frame('2001:dbf:ffff::1'))).toBe(XDP.DROP);
    expect(verdict(udp6Frame('2001:1000::1'))).toBe(XDP.PASS);
    maps.remove([parsePrefix('2001::/20')]);
    expect(set()).toEqual([hint6Bucket(0x20010db8)]);
    // Shorter than /16: every bucket; gone with it.
    drop('2000::/3');
    expect(set()).toHaveLength(1 << HINT6_BITS);
    expect(verdict(udp6Frame('3fff::1'))).toBe(XDP.DROP);
    expect(maps.clearLists()).toBe(2);
    expect(set()).toEqual([]);
    expect(verdict(udp6Frame('2001:db8:5::7'))).toBe(XDP.PASS);
  });

  it('refuses a batch that would overflow a list, and a batch that fails midway puts back what it changed', () => {
    const room = maps.maps.drop4.maxEntries;
    expect(room).toBe(65536);
    const old = new Date('2026-01-02T03:04:05Z');
    maps.add(parsePrefix('192.0.2.0/24'), 'old', old);
    expect(verdict(udp4Frame({ src: '192.0.2.9' }))).toBe(XDP.DROP);
    for (let i = 0; i < room - 1; i++) {
      const addr = Buffer.alloc(4);
      addr.writeUInt32BE(0x0a000000 + i);
      maps.add({ family: 4, addr, len: 32 }, '');
    }
    expect(() => maps.checkRoom([parsePrefix('198.51.100.0/24'), parsePrefix('192.0.2.0/24')], 'kf0')).toThrow(
      new XdplbError('the IPv4 drop list of kf0 would hold 65537 prefixes: it holds at most 65536'),
    );
    maps.checkRoom([parsePrefix('192.0.2.0/24'), parsePrefix('2001:db8::/32')], 'kf0'); // replacing one fits
    // Bypassing the check, the kernel refuses the 65537th: the replaced entry comes back as it was.
    expect(() => maps.addAll([
      { prefix: parsePrefix('192.0.2.0/24'), tag: 'new' },
      { prefix: parsePrefix('198.51.100.0/24'), tag: 'new' },
    ])).toThrow(/bpf_map_update_elem failed with ENOSPC/);
    expect(maps.list().find((p) => p.addr[0] === 192)).toEqual({ family: 4, addr: Buffer.from([192, 0, 2, 0]), len: 24, tag: 'old', loadTime: old, hits: 1n });
    expect(verdict(udp4Frame({ src: '198.51.100.1' }))).toBe(XDP.PASS);
  });

  it('keeps tag and load time; clearing the counters zeroes hits but keeps the entries', () => {
    const at = new Date('2026-01-02T03:04:05Z');
    maps.add(parsePrefix('192.0.2.0/24'), 'x'.repeat(63), at);
    verdict(udp4Frame());
    expect(maps.list()).toEqual([{ family: 4, addr: Buffer.from([192, 0, 2, 0]), len: 24, tag: 'x'.repeat(63), loadTime: at, hits: 1n }]);
    maps.clearStats();
    expect(maps.list()[0]).toMatchObject({ tag: 'x'.repeat(63), loadTime: at, hits: 0n });
    expect(maps.stats()).toEqual(stats());
  });

  it('a listed source is dropped as a source even when it sends fragments (no reply to it)', () => {
    config(true, 100);
    drop('192.0.2.1');
    expect(verdict(udp4Frame({ mf: true, payload: 1480 }))).toBe(XDP.DROP);
    expect(maps.stats()).toEqual(stats({ ip_drop_count: 1n }));
  });
});

describe('filter: fragments', () => {
  const v4first = () => udp4Frame({ mf: true, payload: 1480 });
  const v4later = () => udp4Frame({ offset: 1480, payload: 100 });
  const v6first = () => frag6Frame(0, true);
  const v6later = () => frag6Frame(1232, false, 100);

  it('frags_drop off: IPv4 and IPv6 first and later fragments pass, nothing counted', () => {
    config(false, 100);
    for (const pkt of [v4first(), v4later(), v6first(), v6later()]) expect(verdict(pkt)).toBe(XDP.PASS);
    expect(maps.stats()).toEqual(stats());
  });

  it('frags_drop on, no replies: all four dropped and counted in ip_frag_drop_count', () => {
    config(true, 0);
    for (const pkt of [v4first(), v4later(), v6first(), v6later()]) expect(verdict(pkt)).toBe(XDP.DROP);
    // A Fragment header behind a Hop-by-Hop header is found too.
    expect(verdict(frag6Frame(0, true, 200, { ext: Buffer.from([PROTO.FRAGMENT, 0, 1, 4, 0, 0, 0, 0]) }))).toBe(XDP.DROP);
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 5n }));
    expect(root.counters(SLOT).packets).toEqual(slot({ XDP_DROP: 5n }));
  });

  it('frags_drop on: unfragmented packets (DF set, no Fragment header) pass', () => {
    config(true, 100);
    expect(verdict(udp4Frame({ df: true }))).toBe(XDP.PASS);
    expect(verdict(udp6Frame())).toBe(XDP.PASS);
    expect(maps.stats()).toEqual(stats());
  });

  it('replies to an IPv4 first fragment with ICMP fragmentation needed, byte for byte', () => {
    config(true, 100);
    const pkt = udp4Frame({ mf: true, payload: 1480, src: '203.0.113.9', dst: '198.51.100.7', id: 0x4242 });
    const r = run(pkt);
    expect(r.retval).toBe(XDP.TX);
    expect(r.data.toString('hex')).toBe(expectedPtb4(pkt, 14).toString('hex'));
    // Checksums verified on the output alone: a correct header sums to zero.
    expect(inetChecksum(r.data.subarray(14, 34))).toBe(0);
    expect(inetChecksum(r.data.subarray(34))).toBe(0);
    expect(r.data.length).toBe(14 + 20 + 8 + 20 + 8);
    expect(r.data.readUInt16BE(34 + 6)).toBe(1500); // next-hop MTU: the fragment's size
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 1n, ptb_sent_count: 1n }));
    expect(root.counters(SLOT).packets).toEqual(slot({ XDP_TX: 1n }));
    expect(root.counters(SLOT).bytes).toEqual(slot({ XDP_TX: BigInt(r.data.length) }));
  });

  it('quotes IPv4 options and keeps VLAN tags in the reply', () => {
    config(true, 100);
    const vlans: Array<[number, number]> = [[0x88a8, 7], [0x8100, 42]];
    const pkt = udp4Frame({ mf: true, payload: 600, options: Buffer.from([1, 1, 1, 0]), eth: { vlans } });
    const r = run(pkt);
    expect(r.retval).toBe(XDP.TX);
    expect(r.data.toString('hex')).toBe(expectedPtb4(pkt, 22).toString('hex'));
    expect(inetChecksum(r.data.subarray(22, 42))).toBe(0);
    expect(inetChecksum(r.data.subarray(42))).toBe(0);
  });

  it('replies to an IPv6 first fragment with Packet Too Big quoting 1232 bytes, byte for byte', () => {
    config(true, 100);
    const pkt = frag6Frame(0, true, 1448, { src: '2001:db8:aa::5' }); // a 1496-byte IPv6 packet
    const r = run(pkt);
    expect(r.retval).toBe(XDP.TX);
    expect(r.data.toString('hex')).toBe(expectedPtb6(pkt, 14).toString('hex'));
    expect(r.data.length).toBe(14 + 1280);
    expect(r.data.readUInt32BE(14 + 40 + 4)).toBe(1496);
    const [src, dst] = [r.data.subarray(22, 38), r.data.subarray(38, 54)];
    expect(dst.equals(ipv6('2001:db8:aa::5'))).toBe(true);
    expect(icmp6Checksum(src, dst, r.data.subarray(54))).toBe(0);
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 1n, ptb_sent_count: 1n }));
  });

  it('quotes a small IPv6 first fragment whole, behind VLAN tags and a Hop-by-Hop header', () => {
    config(true, 100);
    const vlans: Array<[number, number]> = [[0x8100, 3]];
    const pkt = frag6Frame(0, true, 200, { ext: Buffer.from([PROTO.FRAGMENT, 0, 1, 4, 0, 0, 0, 0]), eth: { vlans } });
    const r = run(pkt);
    expect(r.retval).toBe(XDP.TX);
    expect(r.data.toString('hex')).toBe(expectedPtb6(pkt, 18).toString('hex'));
    expect(r.data.length).toBe(pkt.length + 48);
  });

  it('never answers ICMP errors, multicast destinations, or later fragments', () => {
    config(true, 100);
    const icmpError = Buffer.concat([eth(ETH_IPV4), ip4(600, { proto: PROTO.ICMP, mf: true }), Buffer.from([3, 1]), pattern(598)]);
    const echo = Buffer.concat([eth(ETH_IPV4), ip4(600, { proto: PROTO.ICMP, mf: true }), Buffer.from([8, 0]), pattern(598)]);
    const multicast = udp4Frame({ mf: true, payload: 600, dst: '239.1.2.3' });
    const icmp6Error = frag6Frame(0, true, 600, { l4: PROTO.ICMPV6 });
    icmp6Error[14 + 40 + 8] = 1; // type 1, destination unreachable
    expect(verdict(icmpError)).toBe(XDP.DROP);
    expect(verdict(multicast)).toBe(XDP.DROP);
    expect(verdict(icmp6Error)).toBe(XDP.DROP);
    expect(verdict(v4later())).toBe(XDP.DROP);
    expect(verdict(v6later())).toBe(XDP.DROP);
    expect(verdict(echo)).toBe(XDP.TX);
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 6n, ptb_sent_count: 1n }));
  });

  it('counts a first fragment too short to quote as ptb_err_count', () => {
    config(true, 100);
    // MF set, offset 0, but only 4 bytes of data: RFC 792 needs 8 to quote.
    const pkt = udp4Frame({ mf: true, payload: 0 });
    const short = Buffer.concat([pkt.subarray(0, 34 - 0), Buffer.alloc(4)]);
    short.writeUInt16BE(24, 16);
    short.writeUInt16BE(0, 24);
    short.writeUInt16BE(inetChecksum(short.subarray(14, 34)), 24);
    expect(verdict(short)).toBe(XDP.DROP);
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 1n, ptb_err_count: 1n }));
  });

  it('ptb_max_pps 5: 100 first fragments within one second get exactly 5 replies, counted globally', async () => {
    config(true, 5);
    // The window is the current second of CLOCK_MONOTONIC (bpf_ktime_get_ns,
    // and process.hrtime here). Start early in a second; 100 runs take a
    // few milliseconds, so they all fall into it.
    const fraction = () => Number(process.hrtime.bigint() % 1_000_000_000n) / 1e9;
    while (fraction() > 0.5) await new Promise((r) => setTimeout(r, 10));
    const frame = v4first();
    const second = process.hrtime.bigint() / 1_000_000_000n;
    const verdicts = Array.from({ length: 100 }, () => verdict(frame));
    expect(process.hrtime.bigint() / 1_000_000_000n).toBe(second);
    expect(verdicts.filter((v) => v === XDP.TX)).toHaveLength(5);
    expect(verdicts.slice(0, 5)).toEqual(Array(5).fill(XDP.TX));
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 100n, ptb_sent_count: 5n }));
    expect(root.counters(SLOT).packets).toEqual(slot({ XDP_TX: 5n, XDP_DROP: 95n }));
    const window = maps.maps.ptb.lookup(Buffer.alloc(4))!;
    expect(window.readUInt32LE(PTB_WINDOW_LAYOUT.second)).toBe(Number(second));
    expect(window.readUInt32LE(PTB_WINDOW_LAYOUT.sent)).toBe(5);
  });

  it('ptb_max_pps 0 sends no replies; raising it later takes effect at once', () => {
    config(true, 0);
    expect(verdict(v6first())).toBe(XDP.DROP);
    config(true, 1);
    expect(verdict(v6first())).toBe(XDP.TX);
    expect(maps.stats()).toEqual(stats({ ip_frag_drop_count: 2n, ptb_sent_count: 1n }));
  });
});
