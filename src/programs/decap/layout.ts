// The decapsulator's maps and the layout of what they hold
// (bpf/subprogs/decap/decap_maps.h; checked against BTF by
// test/kernel/decap.test.ts). Addresses and the port in network order, as
// the data plane compares them.
import { isIP } from 'node:net';
import { addrBytes, addrText } from '../lb/layout.js';

export const MAPS = {
  config: 'decap_config',
  stats: 'decap_stats',
} as const;

export const OBJECT = 'xdp_decap.o';
export const PROGRAM = 'xdp_decap';

/** struct decap_config */
export const CONFIG_LAYOUT = { size: 24, addr6: 0, addr4: 16, gue_port: 20, flags: 22 } as const;
export const CONFIG_FLAGS = { ipv4: 1, ipv6: 2 } as const;

/** struct decap_stats: one __u64 per counter, in this order. */
export const STATS = ['ipip4', 'ipip6', 'gue4', 'gue6', 'bytes', 'not_ours', 'malformed', 'delivered', 'chained', 'unowned'] as const;
export type StatName = (typeof STATS)[number];
export const STATS_SIZE = STATS.length * 8;

export interface DecapConfig {
  /** The backend's tunnel address of each family (what the balancer sends to). */
  address_ipv4?: string;
  address_ipv6?: string;
  /** GUE's UDP port; none: GUE is not decapsulated. */
  gue_port?: number;
}

export function encodeConfig(c: DecapConfig): Buffer {
  const L = CONFIG_LAYOUT;
  const b = Buffer.alloc(L.size);
  let flags = 0;
  if (c.address_ipv4) {
    if (isIP(c.address_ipv4) !== 4) throw new Error(`not an IPv4 address: ${c.address_ipv4}`);
    addrBytes(c.address_ipv4).copy(b, L.addr4, 0, 4);
    flags |= CONFIG_FLAGS.ipv4;
  }
  if (c.address_ipv6) {
    if (isIP(c.address_ipv6) !== 6) throw new Error(`not an IPv6 address: ${c.address_ipv6}`);
    addrBytes(c.address_ipv6).copy(b, L.addr6);
    flags |= CONFIG_FLAGS.ipv6;
  }
  b.writeUInt16BE(c.gue_port ?? 0, L.gue_port);
  b[L.flags] = flags;
  return b;
}

/** Per-CPU values (each rounded to 8 bytes) summed. */
export function decodeStats(cpus: Buffer[]): Record<StatName, bigint> {
  const out = Object.fromEntries(STATS.map((n) => [n, 0n])) as Record<StatName, bigint>;
  for (const cpu of cpus) STATS.forEach((n, i) => (out[n] += cpu.readBigUInt64LE(i * 8)));
  return out;
}

/** What the config map holds, as encodeConfig() takes it (a family off:
 *  no address). */
export function decodeConfig(b: Buffer): DecapConfig {
  const L = CONFIG_LAYOUT;
  const out: DecapConfig = {};
  if (b[L.flags] & CONFIG_FLAGS.ipv4) out.address_ipv4 = addrText(b, 4, L.addr4);
  if (b[L.flags] & CONFIG_FLAGS.ipv6) out.address_ipv6 = addrText(b, 6, L.addr6);
  const port = b.readUInt16BE(L.gue_port);
  if (port) out.gue_port = port;
  return out;
}
