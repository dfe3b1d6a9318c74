// Frames built layer by layer for the filter's tests and benchmark: Ethernet
// with optional VLAN tags, IPv4 (options, fragments), IPv6 (extension and
// Fragment headers), with every checksum computed here, independently of the
// BPF code under test.
import { inetChecksum, ipv4, mac } from './packets.js';

export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;
export const PROTO = { ICMP: 1, TCP: 6, UDP: 17, FRAGMENT: 44, ICMPV6: 58, HOPOPTS: 0, DSTOPTS: 60 } as const;

/** `2001:db8::1` -> 16 bytes (test-side parser, RFC 4291 text forms without
 *  an embedded IPv4 part). */
export function ipv6(text: string): Buffer {
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export interface EthOpts {
  dst?: string;
  src?: string;
  /** VLAN tags outermost first: [tpid, vid] pairs (0x8100 or 0x88a8). */
  vlans?: Array<[number, number]>;
}

export function eth(type: number, o: EthOpts = {}): Buffer {
  const parts = [mac(o.dst ?? '02:00:00:00:00:02'), mac(o.src ?? '02:00:00:00:00:01')];
  for (const [tpid, vid] of o.vlans ?? []) {
    const tag = Buffer.alloc(4);
    tag.writeUInt16BE(tpid, 0);
    tag.writeUInt16BE(vid, 2);
    parts.push(tag);
  }
  const t = Buffer.alloc(2);
  t.writeUInt16BE(type);
  parts.push(t);
  return Buffer.concat(parts);
}

export interface Ip4Opts {
  src?: string;
  dst?: string;
  proto?: number;
  id?: number;
  /** More fragments flag. */
  mf?: boolean;
  df?: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  offset?: number;
  ttl?: number;
  tos?: number;
  options?: Buffer;
}

/** An IPv4 header for `payloadLength` bytes of payload, checksum filled in. */
export function ip4(payloadLength: number, o: Ip4Opts = {}): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + opts.length);
  h[0] = 0x40 | (h.length / 4);
  h[1] = o.tos ?? 0;
  h.writeUInt16BE(h.length + payloadLength, 2);
  h.writeUInt16BE(o.id ?? 0x1234, 4);
  h.writeUInt16BE((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.offset ?? 0) / 8), 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.proto ?? PROTO.UDP;
  ipv4(o.src ?? '192.0.2.1').copy(h, 12);
  ipv4(o.dst ?? '198.51.100.1').copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return h;
}

export interface Ip6Opts {
  src?: string | Buffer;
  dst?: string | Buffer;
  nexthdr?: number;
  hop?: number;
}

const addr6 = (a: string | Buffer) => (typeof a === 'string' ? ipv6(a) : a);

export function ip6(payloadLength: number, o: Ip6Opts = {}): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payloadLength, 4);
  h[6] = o.nexthdr ?? PROTO.UDP;
  h[7] = o.hop ?? 64;
  addr6(o.src ?? '2001:db8::1').copy(h, 8);
  addr6(o.dst ?? '2001:db8:1::2').copy(h, 24);
  return h;
}

/** An IPv6 Fragment header. */
export function frag6(nexthdr: number, offset: number, more: boolean, id = 0xabcd): Buffer {
  const h = Buffer.alloc(8);
  h[0] = nexthdr;
  h.writeUInt16BE(offset | (more ? 1 : 0), 2);
  h.writeUInt32BE(id, 4);
  return h;
}

/** A TCP SYN header (checksum left zero: the filter never reads it). */
export function tcp(sport = 40000, dport = 80): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h[12] = 5 << 4;
  h[13] = 0x02;
  h.writeUInt16BE(65535, 14);
  return h;
}

/** `n` bytes of a recognisable pattern. */
export function pattern(n: number, seed = 0): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));
}

/** ICMPv6 checksum over the pseudo-header and the message. */
export function icmp6Checksum(src: Buffer, dst: Buffer, message: Buffer): number {
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo[39] = PROTO.ICMPV6;
  return inetChecksum(Buffer.concat([pseudo, message]));
}
