// The load balancer's map structs, byte for byte (bpf/subprogs/lb/lb_maps.h);
// the layout test checks every offset against the object's BTF.
// Addresses and ports are kept in network order, as the data plane reads them.
import { isIP } from 'node:net';

export const LB_MAX_VIPS = 512;
export const LB_MAX_BACKENDS = 16384;
export const NO_BACKEND = 0xffffffff;

export const FAMILY = { ipv4: 4, ipv6: 6 } as const;
export const PROTO = { tcp: 6, udp: 17 } as const;
export type Protocol = keyof typeof PROTO;

export const BACKEND_FLAGS = { inUse: 1, mac: 2, removed: 4 } as const;
export const CONFIG_FLAGS = { nat4: 1, nat6: 2 } as const;
/** A VIP's forwarding mode (struct lb_vip_fwd's `mode`, LB_FWD_*). */
export const FORWARDING = { nat: 0, 'dsr-l2': 1, ipip: 2, gue: 3 } as const;
export type Forwarding = keyof typeof FORWARDING;
export const GUE_PORT_DEFAULT = 6080;

export const LAYOUT = {
  lb_addr: { size: 16 },
  lb_vip_key: { size: 20, addr: 0, port: 16, proto: 18, family: 19 },
  lb_vip: { size: 8, id: 0, table_size: 4 },
  lb_backend: { size: 36, addr: 0, port: 16, family: 18, flags: 19, vip_id: 20, weight: 24, mac: 28 },
  lb_config: {
    size: 56, nat4: 0, nat6: 16, port_min: 32, port_max: 34, flags: 36, tcp_idle_s: 40, udp_idle_s: 44, time_wait_s: 48, hz: 52,
  },
  lb_flow: { size: 40, src: 0, dst: 16, sport: 32, dport: 34, proto: 36, family: 37 },
  lb_conn: { size: 16, last_seen: 0, backend: 8, nat_port: 12, fin_client: 14, fin_backend: 15 },
  lb_nat_key: { size: 24, backend: 0, bport: 16, nport: 18, proto: 20, family: 21 },
  lb_nat: { size: 112, flow: 0, backend: 40, vip: 44, l2: 48, touched: 96, cpu: 104 },
  lb_frag_key: { size: 40, src: 0, dst: 16, id: 32, proto: 36, family: 37 },
  lb_frag: { size: 56, src: 0, dst: 16, expires: 32, backend: 40, vip: 44, reply: 48, hash: 52 },
  lb_l2: { size: 48, dst: 0, expires: 16, ifindex: 24, smac: 28, dmac: 34, mtu: 40 },
  lb_counters: {
    size: 120, packets: 0, bytes: 8, reply_packets: 16, reply_bytes: 24, new_conns: 32, conn_misses: 40,
    no_backend: 48, nat_exhausted: 56, fib_no_neigh: 64, fib_failures: 72, icmp_errors: 80,
    bad_checksum: 88, encapsulated: 96, too_big: 104, icmp_forwarded: 112,
  },
  lb_vip_fwd: {
    size: 304, src6: 0, src4: 16, vary4: 20, vary6: 24, gue_port: 28, mode: 30, flags: 31, chain_window_s: 32, gen: 36, lost: 40,
    evicted: 44, changed_at: 48,
  },
  lb_slot: { size: 8, cur: 0, prev: 2, gen: 4 },
} as const;
/** What of struct lb_vip_fwd is config (the rest, from `gen` on, is the
 *  chaining record the control plane keeps: chain.ts). */
export const FWD_CONFIG_SIZE = LAYOUT.lb_vip_fwd.gen;

/** lb_vip_fwd's flags. */
export const FWD_FLAGS = { stateless: 1 } as const;
/** How long a stateless VIP's entries name their previous backend, unless configured. */
export const CHAIN_WINDOW_DEFAULT = 300;
/** struct lb_slot's "no backend" (cur) and "none" (prev). */
export const SLOT_NONE = 0xffff;
/** LB_CHAIN_GENS: the changes whose times a VIP's lb_vip_fwd entry keeps. */
export const CHAIN_GENS = 32;

export const COUNTER_NAMES = [
  'packets', 'bytes', 'reply_packets', 'reply_bytes', 'new_conns', 'conn_misses',
  'no_backend', 'nat_exhausted', 'fib_no_neigh', 'fib_failures', 'icmp_errors',
  'bad_checksum', 'encapsulated', 'too_big', 'icmp_forwarded',
] as const;
export type LbCounters = Record<(typeof COUNTER_NAMES)[number], bigint>;

// ---- addresses ----

/** 16 bytes as the data plane keeps them: IPv4 in the first 4, IPv6 whole. */
export function addrBytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIP(text) === 4) {
    text.split('.').forEach((b, i) => (out[i] = Number(b)));
    return out;
  }
  if (isIP(text) !== 6) throw new Error(`not an IP address: ${text}`);
  let s = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    s = s.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The address in `bytes` (at offset `at`) as text, IPv6 per RFC 5952. */
export function addrText(bytes: Buffer, family: number, at = 0): string {
  if (family === FAMILY.ipv4) return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(at + i * 2).toString(16));
  // RFC 5952: the longest run (of two or more) of zero groups becomes '::'.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function familyOf(address: string): 4 | 6 {
  return isIP(address) === 4 ? 4 : 6;
}

export function macBytes(text: string): Buffer {
  return Buffer.from(text.split(':').map((b) => parseInt(b, 16)));
}

export function macText(bytes: Buffer): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

// ---- encoders ----

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export interface VipKey {
  address: string;
  port: number;
  protocol: Protocol;
}

export function encodeVipKey(k: VipKey): Buffer {
  const L = LAYOUT.lb_vip_key;
  const b = Buffer.alloc(L.size);
  addrBytes(k.address).copy(b, L.addr);
  b.writeUInt16BE(k.port, L.port);
  b[L.proto] = PROTO[k.protocol];
  b[L.family] = familyOf(k.address);
  return b;
}

export function decodeVipKey(b: Buffer): VipKey {
  const L = LAYOUT.lb_vip_key;
  const protocol = b[L.proto] === PROTO.tcp ? 'tcp' : 'udp';
  return { address: addrText(b.subarray(L.addr, L.addr + 16), b[L.family]), port: b.readUInt16BE(L.port), protocol };
}

export function encodeVip(id: number, tableSize: number): Buffer {
  const b = Buffer.alloc(LAYOUT.lb_vip.size);
  b.writeUInt32LE(id, LAYOUT.lb_vip.id);
  b.writeUInt32LE(tableSize, LAYOUT.lb_vip.table_size);
  return b;
}

export function decodeVip(b: Buffer): { id: number; tableSize: number } {
  return { id: b.readUInt32LE(LAYOUT.lb_vip.id), tableSize: b.readUInt32LE(LAYOUT.lb_vip.table_size) };
}

export interface BackendEntry {
  address: string;
  port: number;
  vipId: number;
  weight: number;
  mac?: string;
  removed: boolean;
}

export function encodeBackend(e: BackendEntry): Buffer {
  const L = LAYOUT.lb_backend;
  const b = Buffer.alloc(L.size);
  addrBytes(e.address).copy(b, L.addr);
  b.writeUInt16BE(e.port, L.port);
  b[L.family] = familyOf(e.address);
  b[L.flags] = BACKEND_FLAGS.inUse | (e.mac ? BACKEND_FLAGS.mac : 0) | (e.removed ? BACKEND_FLAGS.removed : 0);
  b.writeUInt32LE(e.vipId, L.vip_id);
  b.writeUInt32LE(e.weight, L.weight);
  if (e.mac) macBytes(e.mac).copy(b, L.mac);
  return b;
}

/** The entry at offset `at` of `b`; null for a free slot of the backend
 *  array. Reads in place: the whole array (16384 slots) is decoded on
 *  every apply. */
export function decodeBackend(b: Buffer, at = 0): BackendEntry | null {
  const L = LAYOUT.lb_backend;
  const flags = b[at + L.flags];
  if (!(flags & BACKEND_FLAGS.inUse)) return null;
  const e: BackendEntry = {
    address: addrText(b, b[at + L.family], at + L.addr),
    port: b.readUInt16BE(at + L.port),
    vipId: b.readUInt32LE(at + L.vip_id),
    weight: b.readUInt32LE(at + L.weight),
    removed: !!(flags & BACKEND_FLAGS.removed),
  };
  if (flags & BACKEND_FLAGS.mac) e.mac = macText(b.subarray(at + L.mac, at + L.mac + 6));
  return e;
}

export interface NatConfig {
  source_ipv4?: string;
  source_ipv6?: string;
  port_min: number;
  port_max: number;
}

export interface Timeouts {
  tcp_idle_s: number;
  udp_idle_s: number;
  time_wait_s: number;
}

/** `hz`: the data plane's clock ticks per second (clock.ts). */
export function encodeConfig(nat: NatConfig, t: Timeouts, hz: number): Buffer {
  const L = LAYOUT.lb_config;
  const b = Buffer.alloc(L.size);
  let flags = 0;
  if (nat.source_ipv4) {
    addrBytes(nat.source_ipv4).copy(b, L.nat4);
    flags |= CONFIG_FLAGS.nat4;
  }
  if (nat.source_ipv6) {
    addrBytes(nat.source_ipv6).copy(b, L.nat6);
    flags |= CONFIG_FLAGS.nat6;
  }
  b.writeUInt16LE(nat.port_min, L.port_min);
  b.writeUInt16LE(nat.port_max, L.port_max);
  b.writeUInt32LE(flags, L.flags);
  b.writeUInt32LE(t.tcp_idle_s, L.tcp_idle_s);
  b.writeUInt32LE(t.udp_idle_s, L.udp_idle_s);
  b.writeUInt32LE(t.time_wait_s, L.time_wait_s);
  b.writeUInt32LE(hz, L.hz);
  return b;
}

export function decodeConfig(b: Buffer): { nat: NatConfig; timeouts: Timeouts } | null {
  const L = LAYOUT.lb_config;
  const flags = b.readUInt32LE(L.flags);
  const portMin = b.readUInt16LE(L.port_min);
  if (!portMin) return null; // never written
  return {
    nat: {
      ...(flags & CONFIG_FLAGS.nat4 ? { source_ipv4: addrText(b.subarray(L.nat4, L.nat4 + 16), 4) } : {}),
      ...(flags & CONFIG_FLAGS.nat6 ? { source_ipv6: addrText(b.subarray(L.nat6, L.nat6 + 16), 6) } : {}),
      port_min: portMin,
      port_max: b.readUInt16LE(L.port_max),
    },
    timeouts: {
      tcp_idle_s: b.readUInt32LE(L.tcp_idle_s),
      udp_idle_s: b.readUInt32LE(L.udp_idle_s),
      time_wait_s: b.readUInt32LE(L.time_wait_s),
    },
  };
}

/** How a VIP reaches its backends: the mode, and for ipip and gue the outer
 *  source of each family (an address, or a prefix whose host bits vary
 *  with the flow) and for gue the UDP port; a stateless gue VIP has
 *  `stateless` and its chaining window. */
export interface VipForwarding {
  forwarding?: Exclude<Forwarding, 'nat'>;
  encap_source_ipv4?: string;
  encap_source_ipv6?: string;
  gue_port?: number;
  stateless?: true;
  chain_window_s?: number;
}

/** 'a.b.c.d' or 'a.b.c.d/len' (IPv6 alike): the address and the mask of
 *  the bits that vary, within the last 32 bits, in network order. */
function sourceBytes(text: string | undefined, family: 4 | 6): { addr: Buffer; vary: Buffer } {
  const vary = Buffer.alloc(4);
  if (!text) return { addr: Buffer.alloc(16), vary };
  const [address, len] = text.split('/');
  const bits = family === 4 ? 32 : 128;
  const host = len === undefined ? 0 : bits - Number(len);
  vary.writeUInt32BE(host >= 32 ? 0xffffffff : ((1 << host) >>> 0) - 1);
  return { addr: addrBytes(address), vary };
}

function sourceText(addr: Buffer, vary: number, family: 4 | 6): string | undefined {
  if (addr.every((b) => b === 0)) return undefined;
  const text = addrText(addr, family);
  if (!vary) return text;
  let host = 0;
  while (host < 32 && vary & (1 << host)) host++;
  return `${text}/${(family === 4 ? 32 : 128) - host}`;
}

export function encodeVipFwd(f: VipForwarding): Buffer {
  const L = LAYOUT.lb_vip_fwd;
  const b = Buffer.alloc(L.size);
  const mode = f.forwarding ?? 'nat';
  b[L.mode] = FORWARDING[mode];
  if (mode !== 'ipip' && mode !== 'gue') return b;
  const v4 = sourceBytes(f.encap_source_ipv4, 4);
  const v6 = sourceBytes(f.encap_source_ipv6, 6);
  v4.addr.copy(b, L.src4, 0, 4);
  v4.vary.copy(b, L.vary4);
  v6.addr.copy(b, L.src6);
  v6.vary.copy(b, L.vary6);
  if (mode === 'gue') b.writeUInt16BE(f.gue_port ?? GUE_PORT_DEFAULT, L.gue_port);
  if (mode === 'gue' && f.stateless) {
    b[L.flags] = FWD_FLAGS.stateless;
    b.writeUInt32LE(f.chain_window_s ?? CHAIN_WINDOW_DEFAULT, L.chain_window_s);
  }
  return b;
}

export function decodeVipFwd(b: Buffer, at = 0): VipForwarding {
  const L = LAYOUT.lb_vip_fwd;
  const mode = (Object.keys(FORWARDING) as Forwarding[]).find((k) => FORWARDING[k] === b[at + L.mode]) ?? 'nat';
  if (mode === 'nat') return {};
  if (mode === 'dsr-l2') return { forwarding: mode };
  const out: VipForwarding = { forwarding: mode };
  const v4 = sourceText(b.subarray(at + L.src4, at + L.src4 + 4), b.readUInt32BE(at + L.vary4), 4);
  const v6 = sourceText(b.subarray(at + L.src6, at + L.src6 + 16), b.readUInt32BE(at + L.vary6), 6);
  if (v4) out.encap_source_ipv4 = v4;
  if (v6) out.encap_source_ipv6 = v6;
  if (mode === 'gue') out.gue_port = b.readUInt16BE(at + L.gue_port);
  if (mode === 'gue' && b[at + L.flags] & FWD_FLAGS.stateless) {
    out.stateless = true;
    out.chain_window_s = b.readUInt32LE(at + L.chain_window_s);
  }
  return out;
}

/** Whether the lb_vip_fwd entry at `at` says stateless. */
export function isStateless(fwd: Buffer, at = 0): boolean {
  const L = LAYOUT.lb_vip_fwd;
  return fwd[at + L.mode] === FORWARDING.gue && (fwd[at + L.flags] & FWD_FLAGS.stateless) !== 0;
}

