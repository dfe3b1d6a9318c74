// One interface's root array: the root program, its 8-slot program array
// with the mask of filled slots, its stats map and the maps of the sample
// protocol (ring buffer, settings, counters), either pinned in the
// interface's directory (see pins.ts) or held by file descriptors only
// (tests, benchmarks).
import { existsSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, BpfObject, closeFd, describeProg, dupFd, openPinned, pinObject, progFullName, progInfo } from '../libbpf/index.js';
import { XdplbError } from '../errors.js';
import { withDirLock } from '../sys/lock.js';
import { PIN, SLOTS, bpfObject, checkMarker } from './pins.js';
import {
  BASELINE_ROW, COUNTERS_SIZE, ROWS, ROW_ROOT, actionCounts, clearRow, deriveTotals, readRow, readRowPerCpu, writeRow, type Counters,
} from './stats.js';

export const ROOT_OBJECT = 'xdp_root.o';
export const ROOT_PROGRAM = 'xdp_root';
export const SLOTS_MAP = 'xdplb_slots';
export const STATS_MAP = 'xdplb_stats';
export const MASK_MAP = '.data.xdplb';
/** The maps every program of an interface shares with its root (the slot
 *  protocol, bpf/include/xdplb/slot.h), by pin name and object map name. */
export const SHARED_MAPS = {
  [PIN.slots]: SLOTS_MAP, [PIN.stats]: STATS_MAP, [PIN.slot_mask]: MASK_MAP,
  [PIN.samples]: 'xdplb_samples', [PIN.sampling]: 'xdplb_sampling', [PIN.sample_stats]: 'xdplb_sample_stats',
} as const;
type SharedPin = keyof typeof SHARED_MAPS;
const SHARED_PINS = Object.keys(SHARED_MAPS) as SharedPin[];
export type SharedMaps = Record<SharedPin, BpfMap>;

/** What to run when a pinned root array cannot be used. */
export function rootRecovery(name: string): string {
  return `run xdp-root --detach --interface ${name} and --attach again`;
}

export class RootArray {
  /** Identifies the root program behind the fd. */
  readonly rootId: number;
  private depth = 0;

  private constructor(
    readonly rootFd: number,
    readonly maps: SharedMaps,
    /** Where it is pinned: the directory whose lock serializes changes. */
    private dir: string | null,
  ) {
    this.rootId = progInfo(rootFd).id;
  }

  get slots(): BpfMap {
    return this.maps.slots;
  }

  get stats(): BpfMap {
    return this.maps.stats;
  }

  /** Load a new root into the kernel, not pinned and not attached. */
  static load(objectPath = bpfObject(ROOT_OBJECT)): RootArray {
    const obj = BpfObject.open(objectPath);
    try {
      obj.load();
      // Our own handles: the object's close() releases its own.
      const maps = Object.fromEntries(SHARED_PINS.map((pin) => [pin, BpfMap.dup(obj.mapFd(SHARED_MAPS[pin]))])) as SharedMaps;
      return new RootArray(dupFd(obj.programFd(ROOT_PROGRAM)), maps, null);
    } finally {
      obj.close();
    }
  }

  /** Open the root pinned in `dir` (an interface's directory); null when
   *  none is pinned there. State of another ABI is refused untouched. */
  static openPinned(dir: string, name = dir): RootArray | null {
    if (!existsSync(join(dir, PIN.root))) return null;
    checkMarker(dir, rootRecovery(name));
    let rootFd = -1;
    const maps: Partial<SharedMaps> = {};
    try {
      rootFd = openPinned(join(dir, PIN.root)) ?? -1;
      for (const pin of SHARED_PINS) {
        const map = BpfMap.openPinned(join(dir, pin));
        if (!map) throw new XdplbError(`incomplete root array pins in ${dir}: ${pin} is missing; ${rootRecovery(name)}`);
        maps[pin] = map;
      }
      if (rootFd < 0) throw new XdplbError(`incomplete root array pins in ${dir}: root is missing; ${rootRecovery(name)}`);
      if (maps.stats!.valueSize !== COUNTERS_SIZE || maps.stats!.maxEntries !== ROWS) {
        throw new XdplbError(`the root array pinned in ${dir} has counters of another layout: ${rootRecovery(name)}`);
      }
      return new RootArray(rootFd, maps as SharedMaps, dir);
    } catch (err) {
      closeFd(rootFd);
      Object.values(maps).forEach((m) => m.close());
      throw err;
    }
  }

  pin(dir: string): void {
    const pinned: string[] = [];
    try {
      pinObject(this.rootFd, join(dir, PIN.root));
      pinned.push(join(dir, PIN.root));
      for (const pin of SHARED_PINS) {
        this.maps[pin].pin(join(dir, pin));
        pinned.push(join(dir, pin));
      }
    } catch (err) {
      pinned.forEach((p) => unlinkSync(p));
      throw err;
    }
    this.dir = dir;
  }

  /** Program id in each slot, 0 for an empty slot. */
  slotIds(): number[] {
    return Array.from({ length: SLOTS }, (_, slot) => this.slots.lookup(slot)?.readUInt32LE(0) ?? 0);
  }

  /** The slots the root and xdplb_return() tail-call: bit i for slot i. */
  slotMask(): number {
    return this.maps.slot_mask.lookup(0)!.readUInt32LE(0);
  }

  /** Changes to the slots, the mask and the counters' baselines, one
   *  process at a time per interface: the mask is rewritten whole from
   *  the array, and processes attaching different subprograms to one
   *  interface run at once (a read-modify-write would lose a bit). A
   *  decision that depends on what a slot holds is made inside it too.
   *  Re-entrant within this process. */
  locked<T>(fn: () => T, shared = false): T {
    if (!this.dir || this.depth > 0) return fn();
    this.depth++;
    try {
      return withDirLock(this.dir, fn, shared);
    } finally {
      this.depth--;
    }
  }

  private writeMask(without = -1): void {
    const mask = this.slotIds().reduce((m, id, slot) => (id && slot !== without ? m | (1 << slot) : m), 0);
    const value = Buffer.alloc(4);
    value.writeUInt32LE(mask >>> 0);
    this.maps.slot_mask.update(0, value);
  }

  /** Put a program into a slot: its counters restart, then one map update
   *  swaps it in (atomic for the data path), then its bit is set, so that
   *  the bit never names an empty slot. Refused when the slot holds
   *  another program, unless `replace`. Returns the id it replaced, 0 when
   *  the slot was empty. */
  fill(slot: number, progFd: number, opts: { replace?: boolean; ifname?: string } = {}): number {
    const value = Buffer.alloc(4);
    value.writeInt32LE(progFd);
    return this.locked(() => {
      const current = this.slotIds()[slot];
      if (current && !opts.replace) throw slotTaken(slot, opts.ifname ?? this.dir ?? 'the root array', current, 'pass --replace to swap it atomically');
      this.restartCounters(slot);
      this.slots.update(slot, value);
      this.writeMask();
      return current;
    });
  }

  /** Empty a slot: its bit first, so the root stops calling it before it
   *  goes; its counters restart. False when it was empty already. */
  empty(slot: number): boolean {
    return this.locked(() => {
      this.writeMask(slot);
      const removed = this.slots.delete(slot);
      this.restartCounters(slot);
      return removed;
    });
  }

  /** Where the mask and the array disagree, read under the lock so that a
   *  change in progress is not one: filled slots the root skips (put there
   *  by another tool, or a change cut short) and empty slots still in the
   *  mask. Null when they agree. */
  maskMismatch(): { skipped: number[]; empty: number[] } | null {
    const [mask, ids] = this.locked(() => [this.slotMask(), this.slotIds()] as const, true);
    const skipped = ids.flatMap((id, slot) => (id && !(mask & (1 << slot)) ? [slot] : []));
    const empty = ids.flatMap((id, slot) => (!id && mask & (1 << slot) ? [slot] : []));
    return skipped.length || empty.length ? { skipped, empty } : null;
  }

  /** Counters of a slot (0..7) since it last restarted, or of the root's
   *  own fall-through (ROW_ROOT). */
  counters(row: number): Counters {
    if (row === ROW_ROOT) return actionCounts(readRow(this.stats, row));
    // The baseline first: read after the row, it could be a newer one.
    const baseline = readRow(this.stats, BASELINE_ROW + row);
    return actionCounts(readRow(this.stats, row), baseline);
  }

  /** The interface totals, what the kernel finally did with each packet,
   *  derived from the rows as the kernel wrote them (see stats.ts). */
  totals(): Counters {
    return deriveTotals(
      Array.from({ length: SLOTS }, (_, slot) => readRow(this.stats, slot)),
      readRow(this.stats, ROW_ROOT),
    );
  }

  /** Restart a slot's counters: its row is left to the kernel and its
   *  baseline becomes what it holds now, so the totals keep every packet. */
  restartCounters(slot: number): void {
    this.locked(() => writeRow(this.stats, BASELINE_ROW + slot, readRowPerCpu(this.stats, slot)));
  }

  /** Zero every counter, totals included: baselines first, so that a
   *  reader in between never sees a row below its baseline. */
  clearCounters(): void {
    this.locked(() => {
      for (let s = 0; s < SLOTS; s++) clearRow(this.stats, BASELINE_ROW + s);
      for (let row = 0; row <= ROW_ROOT; row++) clearRow(this.stats, row);
    });
  }

  close(): void {
    closeFd(this.rootFd);
    Object.values(this.maps).forEach((m) => m.close());
  }
}

/** The name of the program with this id, '?' when it is gone. */
export function progName(id: number): string {
  const info = describeProg(id);
  return info ? progFullName(info) : '?';
}

export function slotTaken(slot: number, ifname: string, id: number, hint: string): XdplbError {
  return new XdplbError(`slot ${slot} of ${ifname} already holds '${progName(id)}' (id ${id}): ${hint}`);
}

/** Remove a directory of pins (bpffs files unlink like any other). */
export function removePins(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
