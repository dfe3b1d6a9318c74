// The stats map: per-CPU `struct xdplb_counters` rows (bpf/include/xdplb/stats.h).
import { mapLookupPerCpu, mapUpdate, possibleCpus } from '../libbpf/index.js';

export const ACTIONS = [
  'XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT', 'XDP_INVALID_ACTION',
] as const;
export type Action = (typeof ACTIONS)[number];

export const ROW_ROOT = 8;
export const ROW_TOTAL = 9;
export const ROWS = 10;
/** sizeof(struct xdplb_counters): packets[6] then bytes[6], all __u64. */
export const COUNTERS_SIZE = ACTIONS.length * 8 * 2;
export const COUNTERS_LAYOUT = { packets: 0, bytes: ACTIONS.length * 8, size: COUNTERS_SIZE } as const;

export type ActionCounts = Record<Action, bigint>;
export interface Counters {
  packets: ActionCounts;
  bytes: ActionCounts;
}

export function zeroCounts(): ActionCounts {
  return Object.fromEntries(ACTIONS.map((a) => [a, 0n])) as ActionCounts;
}

/** Sum one row over all CPUs. */
export function readRow(statsFd: number, row: number): Counters {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(row);
  const packets = zeroCounts();
  const bytes = zeroCounts();
  for (const cpu of mapLookupPerCpu(statsFd, key, COUNTERS_SIZE) ?? []) {
    ACTIONS.forEach((a, i) => {
      packets[a] += cpu.readBigUInt64LE(COUNTERS_LAYOUT.packets + i * 8);
      bytes[a] += cpu.readBigUInt64LE(COUNTERS_LAYOUT.bytes + i * 8);
    });
  }
  return { packets, bytes };
}

export function clearRow(statsFd: number, row: number): void {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(row);
  mapUpdate(statsFd, key, Buffer.alloc(COUNTERS_SIZE * possibleCpus()));
}
