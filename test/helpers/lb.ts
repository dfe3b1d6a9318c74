// Load balancer test helpers: frames of any family and protocol with every
// checksum computed here from scratch, a network namespace to run programs
// (and their FIB lookups) in, and the balancer's maps of a loaded program.
import { execFileSync } from 'node:child_process';
import { BpfMap, closeFd, closeMaps, progInfo } from '../../src/libbpf/index.js';
import { RootArray } from '../../src/root/array.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { BPF } from './cli.js';
import { LB_MAPS, type LbMapName } from '../../src/programs/lb/spec.js';
import type { LbMaps } from '../../src/programs/lb/state.js';
import { addrBytes, familyOf } from '../../src/programs/lb/layout.js';
import { enterNetns } from './netns.js';
import { inetChecksum, mac } from './packets.js';
import { frag6, icmp6Checksum } from './frames.js';

export interface L4Frame {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: 'tcp' | 'udp';
  srcMac?: string;
  dstMac?: string;
  /** TCP flags byte (SYN 0x02, ACK 0x10, FIN 0x01, RST 0x04). */
  flags?: number;
  seq?: number;
  payload?: Buffer;
  /** UDP over IPv4 without a checksum (0). */
  noUdpChecksum?: boolean;
  ipId?: number;
  ttl?: number;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

function ipBytes(text: string): Buffer {
  return familyOf(text) === 4 ? addrBytes(text).subarray(0, 4) : addrBytes(text);
}

/** Ethernet + IPv4/IPv6 + TCP/UDP with valid checksums. */
export function frame(f: L4Frame): Buffer {
  const v4 = familyOf(f.src) === 4;
  const payload = f.payload ?? Buffer.from('xdplb lb payload');
  let l4: Buffer;
  const protoNum = f.proto === 'tcp' ? 6 : 17;
  if (f.proto === 'tcp') {
    l4 = Buffer.alloc(20);
    l4.writeUInt16BE(f.sport, 0);
    l4.writeUInt16BE(f.dport, 2);
    l4.writeUInt32BE(f.seq ?? 1000, 4);
    l4[12] = 5 << 4;
    l4[13] = f.flags ?? TCP.SYN;
    l4.writeUInt16BE(65535, 14);
    l4 = Buffer.concat([l4, payload]);
  } else {
    l4 = Buffer.alloc(8);
    l4.writeUInt16BE(f.sport, 0);
    l4.writeUInt16BE(f.dport, 2);
    l4.writeUInt16BE(8 + payload.length, 4);
    l4 = Buffer.concat([l4, payload]);
  }
  const src = ipBytes(f.src);
  const dst = ipBytes(f.dst);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(l4.length);
  const pseudo = v4
    ? Buffer.concat([src, dst, Buffer.from([0, protoNum]), len.subarray(2)])
    : Buffer.concat([src, dst, len, Buffer.from([0, 0, 0, protoNum])]);
  const csumAt = f.proto === 'tcp' ? 16 : 6;
  if (!(f.proto === 'udp' && v4 && f.noUdpChecksum)) {
    const sum = inetChecksum(Buffer.concat([pseudo, l4]));
    l4.writeUInt16BE(f.proto === 'udp' && sum === 0 ? 0xffff : sum, csumAt);
  }
  let ip: Buffer;
  if (v4) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip.writeUInt16BE(f.ipId ?? 0x4242, 4);
    ip[6] = 0x40; // DF
    ip[8] = f.ttl ?? 64;
    ip[9] = protoNum;
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(inetChecksum(ip), 10);
  } else {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = protoNum;
    ip[7] = f.ttl ?? 64;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  }
  const eth = Buffer.concat([
    mac(f.dstMac ?? '02:00:00:00:00:10'), mac(f.srcMac ?? '02:00:00:00:00:01'), Buffer.from(v4 ? [0x08, 0x00] : [0x86, 0xdd]),
  ]);
  return Buffer.concat([eth, ip, l4]);
}

export interface IcmpErrorFrame {
  src: string;
  dst: string;
  srcMac?: string;
  dstMac?: string;
  type: number;
  code: number;
  /** The header's last four bytes (an MTU for "fragmentation needed" and Packet Too Big). */
  rest?: number;
  /** The quoted packet, from its IP header on. */
  quoted: Buffer;
}

/** Ethernet + IPv4/ICMP or IPv6/ICMPv6 error, checksums computed here. */
export function icmpError(f: IcmpErrorFrame): Buffer {
  const v4 = familyOf(f.src) === 4;
  const msg = Buffer.concat([Buffer.alloc(8), f.quoted]);
  msg[0] = f.type;
  msg[1] = f.code;
  msg.writeUInt32BE(f.rest ?? 0, 4);
  const src = ipBytes(f.src);
  const dst = ipBytes(f.dst);
  let ip: Buffer;
  if (v4) {
    msg.writeUInt16BE(inetChecksum(msg), 2);
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + msg.length, 2);
    ip[8] = 64;
    ip[9] = 1;
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(inetChecksum(ip), 10);
  } else {
    msg.writeUInt16BE(icmp6Checksum(src, dst, msg), 2);
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(msg.length, 4);
    ip[6] = 58;
    ip[7] = 64;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  }
  const eth = Buffer.concat([
    mac(f.dstMac ?? '02:00:00:00:00:10'), mac(f.srcMac ?? '02:00:00:00:00:01'), Buffer.from(v4 ? [0x08, 0x00] : [0x86, 0xdd]),
  ]);
  return Buffer.concat([eth, ip, msg]);
}

/** A frame made by frame() cut into IP fragments of at most `chunk` bytes
 *  of payload each (a multiple of 8), as a sender's kernel would: IPv4
 *  with MF and offsets (DF cleared), IPv6 with a Fragment header. */
export function fragments(full: Buffer, chunk: number, id = 0x1234): Buffer[] {
  const v4 = full.readUInt16BE(12) === 0x0800;
  const eth = full.subarray(0, 14);
  const hdr = full.subarray(14, v4 ? 34 : 54);
  const payload = full.subarray(v4 ? 34 : 54);
  const out: Buffer[] = [];
  for (let off = 0; off < payload.length; off += chunk) {
    const part = payload.subarray(off, off + chunk);
    const more = off + chunk < payload.length;
    const ip = Buffer.from(hdr);
    if (v4) {
      ip.writeUInt16BE(20 + part.length, 2);
      ip.writeUInt16BE(id & 0xffff, 4);
      ip.writeUInt16BE((more ? 0x2000 : 0) | (off / 8), 6);
      ip.writeUInt16BE(0, 10);
      ip.writeUInt16BE(inetChecksum(ip), 10);
      out.push(Buffer.concat([eth, ip, part]));
    } else {
      const fh = frag6(ip[6], off, more, id);
      ip[6] = 44;
      ip.writeUInt16BE(8 + part.length, 4);
      out.push(Buffer.concat([eth, ip, fh, part]));
    }
  }
  return out;
}

/** The fields of a frame made by frame() (or rewritten by the balancer). */
export function parseFrame(b: Buffer): { dstMac: string; srcMac: string; src: string; dst: string; sport: number; dport: number; flags: number } {
  const hex = (x: Buffer) => Array.from(x, (v) => v.toString(16).padStart(2, '0')).join(':');
  const v4 = b.readUInt16BE(12) === 0x0800;
  const l4 = v4 ? 34 : 54;
  const text = (x: Buffer) => (v4 ? Array.from(x).join('.') : Array.from({ length: 8 }, (_, i) => x.readUInt16BE(i * 2).toString(16)).join(':'));
  return {
    dstMac: hex(b.subarray(0, 6)),
    srcMac: hex(b.subarray(6, 12)),
    src: text(v4 ? b.subarray(26, 30) : b.subarray(22, 38)),
    dst: text(v4 ? b.subarray(30, 34) : b.subarray(38, 54)),
    sport: b.readUInt16BE(l4),
    dport: b.readUInt16BE(l4 + 2),
    flags: b[l4 + 13],
  };
}

/** The balancer's maps, found through a loaded program's map ids. */
export function lbMapsOf(progFd: number): LbMaps {
  const maps: Partial<LbMaps> = {};
  for (const id of progInfo(progFd).mapIds) {
    const map = BpfMap.byId(id)!;
    if ((LB_MAPS as readonly string[]).includes(map.name)) maps[map.name as LbMapName] = map;
    else map.close();
  }
  for (const name of LB_MAPS) if (maps[name] === undefined) throw new Error(`program has no map ${name}`);
  return maps as LbMaps;
}

export function closeLb(maps: LbMaps): void {
  closeMaps(maps);
}

/** The balancer loaded into `slot` of `root` (not pinned): its maps. */
export function fillLb(root: RootArray, slot: number): LbMaps {
  const fd = loadSlotProgram(root, { object: BPF('xdp_lb.o'), program: 'xdp_lb', slot });
  try {
    root.fill(slot, fd);
    return lbMapsOf(fd);
  } finally {
    closeFd(fd);
  }
}

export interface LbInstance {
  root: RootArray;
  fds: LbMaps;
  close(): void;
}

/** A root array of its own with the balancer in `slot`, as kernel tests and
 *  benchmarks run it. */
export function loadLb(slot: number): LbInstance {
  const root = RootArray.load();
  try {
    const fds = fillLb(root, slot);
    return { root, fds, close: () => { closeLb(fds); root.close(); } };
  } catch (err) {
    root.close();
    throw err;
  }
}

/** Make a namespace with `setup` (ip commands run inside it) and switch this
 *  thread into it; the returned function switches back and deletes it. */
export function enterLabNamespace(name: string, setup: string[][]): () => void {
  execFileSync('ip', ['netns', 'add', name]);
  let back: () => void;
  try {
    for (const args of setup) execFileSync('ip', ['-n', name, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    back = enterNetns(name);
  } catch (err) {
    execFileSync('ip', ['netns', 'del', name]);
    throw err;
  }
  return () => {
    try {
      back();
    } finally {
      execFileSync('ip', ['netns', 'del', name]);
    }
  };
}

export function sysctlIn(ns: string, key: string, value: string): void {
  execFileSync('nsenter', [`--net=/run/netns/${ns}`, 'sysctl', '-q', '-w', `${key}=${value}`], { stdio: 'ignore' });
}
