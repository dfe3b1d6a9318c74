// Status of root arrays, read back from bpffs pins and the kernel only.
import { existsSync, readdirSync } from 'node:fs';
import { bootTimeNs, ifNameToIndex, progFullName } from '../libbpf/index.js';
import { validateInterfaceName } from '../net/interface.js';
import { interfaceDir, pinRoot } from './layout.js';
import { RootArray, describeProg } from './array.js';
import { attachedPrograms, type AttachedMode } from './attach.js';
import { ROW_ROOT, type ActionCounts } from './stats.js';

export interface SlotStatus {
  slot: number;
  prog_loaded: boolean;
  id?: number;
  name?: string;
  load_time?: Date;
  statistics: ActionCounts;
  bytes: ActionCounts;
}

export type InterfaceStatus =
  | { root_loaded: false; stale_pins?: true }
  | {
      root_loaded: true;
      mode: AttachedMode;
      ifindex: number;
      root_id: number;
      subprograms: SlotStatus[];
      /** Packets that found every slot empty and were passed by the root. */
      root: { statistics: ActionCounts; bytes: ActionCounts };
      /** Final verdicts: what the kernel did with each packet. */
      statistics: ActionCounts;
      bytes: ActionCounts;
      /** Only when the slot mask and the slots disagree (see RootArray). */
      slot_mask_mismatch?: { skipped: number[]; empty: number[] };
    };

/** Interfaces that have pins, in name order. */
export function pinnedInterfaces(): string[] {
  const base = pinRoot();
  if (!existsSync(base)) return [];
  return readdirSync(base, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(`${base}/${e.name}/root`))
    .map((e) => e.name)
    .sort();
}

/** Convert a CLOCK_BOOTTIME stamp (bpf_prog_info.load_time) to wall time. */
export function bootTimeToDate(ns: bigint, nowBoot = bootTimeNs(), nowMs = Date.now()): Date {
  return new Date(nowMs - Number((nowBoot - ns) / 1_000_000n));
}

export function interfaceStatus(ifname: string): InterfaceStatus {
  const root = RootArray.openPinned(interfaceDir(validateInterfaceName(ifname)));
  if (!root) return { root_loaded: false };
  try {
    const ifindex = ifNameToIndex(ifname);
    const mine = ifindex ? attachedPrograms(ifindex).find((p) => p.id === root.rootId) : undefined;
    if (!mine) return { root_loaded: false, stale_pins: true };
    const nowBoot = bootTimeNs();
    const nowMs = Date.now();
    const subprograms = root.slotIds().map((id, slot): SlotStatus => {
      const { packets, bytes } = root.counters(slot);
      const info = id ? describeProg(id) : null;
      if (!info) return { slot, prog_loaded: false, statistics: packets, bytes };
      return {
        slot, prog_loaded: true, id, name: progFullName(info),
        load_time: bootTimeToDate(info.loadTime, nowBoot, nowMs), statistics: packets, bytes,
      };
    });
    const rootRow = root.counters(ROW_ROOT);
    const total = root.totals();
    const mismatch = root.maskMismatch();
    return {
      root_loaded: true, mode: mine.mode, ifindex, root_id: root.rootId, subprograms,
      root: { statistics: rootRow.packets, bytes: rootRow.bytes },
      statistics: total.packets, bytes: total.bytes,
      ...(mismatch && { slot_mask_mismatch: mismatch }),
    };
  } finally {
    root.close();
  }
}

export function status(ifnames?: string[]): Record<string, InterfaceStatus> {
  const names = ifnames ?? pinnedInterfaces();
  return Object.fromEntries(names.map((n) => [n, interfaceStatus(n)]));
}

/** Zero every counter of the interfaces' root arrays; names of those cleared. */
export function clearCounters(ifnames?: string[]): string[] {
  const names = ifnames ?? pinnedInterfaces();
  return names.filter((n) => {
    const root = RootArray.openPinned(interfaceDir(validateInterfaceName(n)));
    if (!root) return false;
    try {
      root.clearCounters();
      return true;
    } finally {
      root.close();
    }
  });
}

