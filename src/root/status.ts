// Status of root arrays, read back from bpffs pins and the kernel only.
import { describeProg, progFullName } from '../libbpf/index.js';
import { bootTimeNs } from '../sys/clock.js';
import { ifNameToIndex } from '../sys/netdev.js';
import { findPinned, pinnedIfaces, resolveIface, type PinnedIface } from './pins.js';
import { RootArray } from './array.js';
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
  /** `gone`: pinned for a device that no longer exists (ifindex it had). */
  | { root_loaded: false; gone?: true; ifindex?: number }
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

/** Convert a CLOCK_BOOTTIME stamp (bpf_prog_info.load_time) to wall time. */
export function bootTimeToDate(ns: bigint, nowBoot = bootTimeNs(), nowMs = Date.now()): Date {
  return new Date(nowMs - Number((nowBoot - ns) / 1_000_000n));
}

export function interfaceStatus(p: PinnedIface): InterfaceStatus {
  if (p.gone) return { root_loaded: false, gone: true, ifindex: p.ifindex };
  const root = RootArray.openPinned(p.dir, p.name);
  if (!root) return { root_loaded: false };
  try {
    const mine = attachedPrograms(p.ifindex).find((a) => a.id === root.rootId);
    if (!mine) return { root_loaded: false };
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
      root_loaded: true, mode: mine.mode, ifindex: p.ifindex, root_id: root.rootId, subprograms,
      root: { statistics: rootRow.packets, bytes: rootRow.bytes },
      statistics: total.packets, bytes: total.bytes,
      ...(mismatch && { slot_mask_mismatch: mismatch }),
    };
  } finally {
    root.close();
  }
}

/** The interfaces named (each must exist here, or have pins left from a
 *  device of that name), or every interface of this namespace with pins.
 *  Keyed by name; pins of a gone device whose name a live one has now are
 *  keyed `name@if<index>`. */
export function selectIfaces(ifnames?: string[]): Array<[string, PinnedIface]> {
  const chosen: PinnedIface[] = [];
  if (ifnames) {
    for (const name of ifnames) {
      const { live, gone } = findPinned(name);
      if (live) chosen.push(live);
      else if (!gone.length) {
        const iface = resolveIface(name); // unknown here: says so
        chosen.push({ ...iface, dir: '', gone: false });
      }
      chosen.push(...gone);
    }
  } else {
    chosen.push(...pinnedIfaces());
  }
  // A gone device's pins are keyed apart when a device has its name now.
  return chosen.map((p) => [p.gone && ifNameToIndex(p.name) ? `${p.name}@if${p.ifindex}` : p.name, p]);
}

export function status(ifnames?: string[]): Record<string, InterfaceStatus> {
  return Object.fromEntries(selectIfaces(ifnames).map(([key, p]) => [key, p.dir ? interfaceStatus(p) : { root_loaded: false }]));
}

/** Zero every counter of the interfaces' root arrays; names of those cleared. */
export function clearCounters(ifnames?: string[]): string[] {
  return selectIfaces(ifnames).filter(([, p]) => {
    if (p.gone || !p.dir) return false;
    const root = RootArray.openPinned(p.dir, p.name);
    if (!root) return false;
    try {
      root.clearCounters();
      return true;
    } finally {
      root.close();
    }
  }).map(([key]) => key);
}
