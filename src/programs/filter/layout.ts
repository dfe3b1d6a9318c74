// The filter's place in the root array and the layout of what its maps hold
// (bpf/subprogs/filter/filter_maps.h; checked against the object's BTF by
// the layout test with every subprogram's).
import type { ProgramSpec } from '../../root/place.js';

export const MAPS = {
  config: 'filter_config',
  stats: 'filter_stats',
  drop4: 'filter_drop4',
  drop6: 'filter_drop6',
  ptb: 'filter_ptb',
  hint4: 'filter_hint4',
  hint6: 'filter_hint6',
} as const;

export const FILTER: ProgramSpec = {
  name: 'filter',
  object: 'xdp_filter.o',
  program: 'xdp_filter',
  defaultSlot: 2,
  interfaceMaps: Object.values(MAPS),
};

/** struct filter_config */
export const CONFIG_LAYOUT = { size: 8, frags_drop: 0, ptb_max_pps: 4 } as const;

/** struct filter_stats: one __u64 per counter, in this order. */
export const STATS = [
  'eth_frame_err', 'ip_header_err', 'ip6_header_err', 'ip_drop_count', 'ip6_drop_count',
  'ip_frag_drop_count', 'ptb_sent_count', 'ptb_err_count', 'ptb_mem_err_count',
] as const;
export type StatName = (typeof STATS)[number];
export const STATS_SIZE = STATS.length * 8;

/** struct filter_key4 / filter_key6: prefix length, then the address. */
export const KEY4_LAYOUT = { size: 8, prefixlen: 0, addr: 4 } as const;
export const KEY6_LAYOUT = { size: 20, prefixlen: 0, addr: 4 } as const;

/** struct filter_prefix */
export const TAG_SIZE = 64;
export const TAG_MAX_BYTES = TAG_SIZE - 1;
export const PREFIX_LAYOUT = { size: 80, hits: 0, load_time: 8, tag: 16 } as const;

/** filter_hint4: one __u32 per /16 of IPv4 space, 1 where a listed prefix
 *  covers part of it. */
export const HINT4_BITS = 16;

/** filter_hint6: one __u32 per bucket of /32s (the first 32 bits hashed as
 *  filter_hint6_bucket() in filter_maps.h does), 1 where a listed prefix
 *  covers part of a /32 of that bucket. */
export const HINT6_BITS = 16;

export function hint6Bucket(first32: number): number {
  return Math.imul(first32, 0x9e3779b1) >>> (32 - HINT6_BITS);
}

/** struct filter_ptb_window: the lock, then this second's window. */
export const PTB_WINDOW_LAYOUT = { size: 16, second: 4, sent: 8 } as const;

/** Every struct above, by C name, for the layout test. */
export const LAYOUTS = {
  filter_config: CONFIG_LAYOUT,
  filter_stats: { size: STATS_SIZE, ...Object.fromEntries(STATS.map((s, i) => [s, i * 8])) },
  filter_key4: KEY4_LAYOUT,
  filter_key6: KEY6_LAYOUT,
  filter_prefix: PREFIX_LAYOUT,
  filter_ptb_window: PTB_WINDOW_LAYOUT,
};
