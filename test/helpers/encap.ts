// Encapsulated frames built from scratch for the balancer's DSR tests and
// the decapsulator's: outer IPv4/IPv6 headers, UDP (GUE), every checksum
// computed here over the actual bytes; the flow hash the balancer derives
// its entropy from (GUE source port, IPv6 flow label, a varied source),
// written again from its definition in bpf/subprogs/lb/lb_hash.h and
// lb_encap.h; and pinning this process to one CPU, as a NIC's RSS pins a
// flow (the connection table is per CPU).
import { execFileSync } from 'node:child_process';
import { addrBytes, familyOf } from '../../src/programs/lb/layout.js';
import { inetChecksum, mac } from './packets.js';

const mix = (h: number, w: number) => {
  h = Math.imul(h ^ w, 0x9e3779b1);
  return (h ^ (h >>> 16)) >>> 0;
};
const final = (h: number) => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
};
const swap16 = (n: number) => ((n & 0xff) << 8) | (n >> 8);

export interface Flow {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: 'tcp' | 'udp';
}

/** lb_flow_key_hash(flow) (an IPv4 flow's zero address words left out):
 *  the entropy of the flow's outer header. */
export function encapHash(f: Flow): number {
  const src = addrBytes(f.src);
  const dst = addrBytes(f.dst);
  let h = 0x61c88647;
  for (let i = 0; i < (familyOf(f.src) === 4 ? 1 : 4); i++) {
    h = mix(h, src.readUInt32LE(i * 4));
    h = mix(h, dst.readUInt32LE(i * 4));
  }
  h = mix(h, ((swap16(f.sport) << 16) | swap16(f.dport)) >>> 0);
  h = mix(h, f.proto === 'tcp' ? 6 : 17);
  return final(h);
}

/** The GUE source port of a flow (49152-65535). */
export const gueSport = (f: Flow) => 0xc000 | (encapHash(f) >>> 18);

/** The outer source from a prefix: the host bits (the last `bits`) taken
 *  from the flow's hash, in network order. */
export function variedSource(prefix: string, bits: number, f: Flow): string {
  const a = addrBytes(prefix);
  const at = familyOf(prefix) === 4 ? 0 : 12;
  const h = Buffer.alloc(4);
  h.writeUInt32LE(encapHash(f)); // the hash as the kernel holds it, stored over the address bytes
  const mask = bits >= 32 ? 0xffffffff : (1 << bits) - 1;
  const word = (a.readUInt32BE(at) & ~mask) | (h.readUInt32BE(0) & mask);
  a.writeUInt32BE(word >>> 0, at);
  return familyOf(prefix) === 4
    ? Array.from(a.subarray(0, 4)).join('.')
    : Array.from({ length: 8 }, (_, i) => a.readUInt16BE(i * 2).toString(16)).join(':');
}

export interface Outer {
  src: string;
  dst: string;
  srcMac: string;
  dstMac: string;
  /** 'ipip' or GUE's UDP destination port. */
  kind: 'ipip' | { guePort: number; sport: number; gueHeader?: Buffer };
  tos?: number;
  ttl?: number;
  /** IPv6 outer: the flow label. */
  flowLabel?: number;
  /** IPv4 outer: DF (set by the balancer), id. */
  df?: boolean;
  id?: number;
  /** IPv4 outer: UDP checksum (FOU sends none); IPv6 always has one. */
  udpChecksum?: boolean;
}

/** `inner` is an IP packet (no L2); the whole frame comes back. */
export function encapsulate(inner: Buffer, o: Outer): Buffer {
  const v4 = familyOf(o.src) === 4;
  const innerV4 = inner[0] >> 4 === 4;
  const src = v4 ? addrBytes(o.src).subarray(0, 4) : addrBytes(o.src);
  const dst = v4 ? addrBytes(o.dst).subarray(0, 4) : addrBytes(o.dst);
  const tos = o.tos ?? (innerV4 ? inner[1] : ((inner.readUInt16BE(0) >> 4) & 0xff));
  const ttl = o.ttl ?? (innerV4 ? inner[8] : inner[7]);
  let payload = inner;
  let proto = innerV4 ? 4 : 41;
  if (o.kind !== 'ipip') {
    const gue = o.kind.gueHeader ?? Buffer.alloc(0);
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(o.kind.sport, 0);
    udp.writeUInt16BE(o.kind.guePort, 2);
    udp.writeUInt16BE(8 + gue.length + inner.length, 4);
    payload = Buffer.concat([udp, gue, inner]);
    if (!v4 || o.udpChecksum) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(payload.length);
      const pseudo = v4
        ? Buffer.concat([src, dst, Buffer.from([0, 17]), len.subarray(2)])
        : Buffer.concat([src, dst, len, Buffer.from([0, 0, 0, 17])]);
      const sum = inetChecksum(Buffer.concat([pseudo, payload]));
      payload.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
    }
    proto = 17;
  }
  let ip: Buffer;
  if (v4) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip[1] = tos;
    ip.writeUInt16BE(20 + payload.length, 2);
    ip.writeUInt16BE(o.id ?? 0, 4);
    ip.writeUInt16BE(o.df === false ? 0 : 0x4000, 6);
    ip[8] = ttl;
    ip[9] = proto;
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(inetChecksum(ip), 10);
  } else {
    ip = Buffer.alloc(40);
    ip.writeUInt32BE((0x6 << 28) | (tos << 20) | ((o.flowLabel ?? 0) & 0xfffff), 0);
    ip.writeUInt16BE(payload.length, 4);
    ip[6] = proto;
    ip[7] = ttl;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  }
  const eth = Buffer.concat([mac(o.dstMac), mac(o.srcMac), Buffer.from(v4 ? [0x08, 0x00] : [0x86, 0xdd])]);
  return Buffer.concat([eth, ip, payload]);
}

/** Run this process (every thread of it) on one CPU, as RSS runs a flow;
 *  returns the way back to the CPUs it had. */
export function pinToCpu(cpu: number): () => void {
  const was = execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).trim().split(/:\s*/).pop()!;
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  return () => execFileSync('taskset', ['-a', '-p', was, String(process.pid)], { stdio: 'ignore' });
}

/** A GUE variant-0 header naming a previous backend (docs/ARCHITECTURE.md,
 *  "Stateless balancing"): Hlen 2 (an IPv4 address) or 5 (IPv6), the inner packet's protocol (4 or 41),
 *  no flags; the address, then the generation, big-endian. */
export function gueVariant0(innerFamily: 4 | 6, prev: string, gen: number): Buffer {
  const v4 = familyOf(prev) === 4;
  const h = Buffer.alloc(4);
  h[0] = v4 ? 2 : 5;
  h[1] = innerFamily === 4 ? 4 : 41;
  const g = Buffer.alloc(4);
  g.writeUInt32BE(gen);
  return Buffer.concat([h, v4 ? addrBytes(prev).subarray(0, 4) : addrBytes(prev), g]);
}

/** The entry of a stateless VIP's table of `size` entries a flow takes:
 *  its hash scaled to the size (lb_slot_at() in lb_stateless.h). */
export const statelessEntry = (f: Flow, size: number) => Number((BigInt(encapHash(f)) * BigInt(size)) >> 32n);
