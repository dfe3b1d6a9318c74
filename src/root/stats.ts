// The stats map: per-CPU `struct xdplb_counters` rows (bpf/include/xdplb/stats.h).
import type { BpfMap } from '../libbpf/index.js';
import { SLOTS } from './pins.js';

export const ACTIONS = [
  'XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT', 'XDP_INVALID_ACTION',
] as const;
export type Action = (typeof ACTIONS)[number];

/** Columns of a row: the actions, then FINAL_PASS. The kernel counts a
 *  PASS handed on to a later slot under PASS and one no later slot took
 *  under FINAL_PASS (see stats.h); a slot's PASS, as shown, is both. */
const FINAL_PASS = ACTIONS.length;
const COLUMNS = ACTIONS.length + 1;

export const ROW_ROOT = 8;
/** Rows userspace alone writes: slot s's counters as they were when they
 *  last restarted, at BASELINE_ROW + s. */
export const BASELINE_ROW = 9;
export const ROWS = BASELINE_ROW + SLOTS;
/** sizeof(struct xdplb_counters): packets[7] then bytes[7], all __u64. */
export const COUNTERS_SIZE = COLUMNS * 8 * 2;
export const COUNTERS_LAYOUT = { packets: 0, bytes: COLUMNS * 8, size: COUNTERS_SIZE, columns: COLUMNS } as const;

export type ActionCounts = Record<Action, bigint>;
export interface Counters {
  packets: ActionCounts;
  bytes: ActionCounts;
}

export function zeroCounts(): ActionCounts {
  return Object.fromEntries(ACTIONS.map((a) => [a, 0n])) as ActionCounts;
}

/** One row summed over all CPUs, every column. */
export interface Row {
  packets: bigint[];
  bytes: bigint[];
}

/** The row as the kernel stores it: one value per possible CPU. */
export function readRowPerCpu(stats: BpfMap, row: number): Buffer[] {
  return stats.lookupPerCpu(row) ?? [];
}

/** One row summed over CPUs: the u64 words are packets[COLUMNS] then
 *  bytes[COLUMNS] (struct xdplb_counters). */
export function readRow(stats: BpfMap, row: number): Row {
  const words = stats.sumPerCpu(row);
  return { packets: words.slice(0, COLUMNS), bytes: words.slice(COLUMNS, 2 * COLUMNS) };
}

export function writeRow(stats: BpfMap, row: number, perCpu: Buffer[]): void {
  stats.update(row, Buffer.concat(perCpu));
}

export function clearRow(stats: BpfMap, row: number): void {
  stats.zero(row);
}

/** A row's actions, less a baseline, with PASS handed on and final PASS
 *  together. Never below zero: a read racing a --clear can see the old
 *  baseline and the new zeros. */
export function actionCounts(row: Row, baseline?: Row): Counters {
  const packets = zeroCounts();
  const bytes = zeroCounts();
  const less = (a: bigint, b = 0n) => (a > b ? a - b : 0n);
  const column = (counts: bigint[], i: number) => counts[i] + (ACTIONS[i] === 'XDP_PASS' ? counts[FINAL_PASS] : 0n);
  ACTIONS.forEach((a, i) => {
    packets[a] = less(column(row.packets, i), baseline && column(baseline.packets, i));
    bytes[a] = less(column(row.bytes, i), baseline && column(baseline.bytes, i));
  });
  return { packets, bytes };
}

/** What the kernel finally did with each packet, from the raw rows (slots
 *  0..7 and the root): every non-PASS verdict is final where it was given
 *  (an invalid action was an XDP_ABORTED), a PASS only where no later slot
 *  took it (FINAL_PASS) or where the root found every slot empty. */
export function deriveTotals(slots: Row[], root: Row): Counters {
  const packets = zeroCounts();
  const bytes = zeroCounts();
  const add = (a: Action, row: Row, column: number) => {
    packets[a] += row.packets[column];
    bytes[a] += row.bytes[column];
  };
  for (const row of slots) {
    ACTIONS.forEach((a, i) => {
      if (a === 'XDP_PASS') add(a, row, FINAL_PASS);
      else if (a === 'XDP_INVALID_ACTION') add('XDP_ABORTED', row, i);
      else add(a, row, i);
    });
  }
  add('XDP_PASS', root, ACTIONS.indexOf('XDP_PASS'));
  return { packets, bytes };
}
