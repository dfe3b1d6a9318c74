// One interface's root array: the root program, its 8-slot program array
// with the mask of filled slots, its stats map and the maps of the sample
// protocol (ring buffer, settings, counters), either pinned under
// /sys/fs/bpf/xdplb/<ifname>/ or held by file descriptors only (tests,
// benchmarks).
import { existsSync, rmSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  BpfObject, closeFd, openPinned, pinObject, progInfo, mapInfo, mapLookup, mapUpdate, mapDelete,
  progFdById, withFd, dupFd, withDirLock,
} from '../libbpf/index.js';
import { XdplbError } from '../errors.js';
import { PIN, SLOTS, bpfObject, ensurePinDir } from './layout.js';
import {
  BASELINE_ROW, COUNTERS_SIZE, ROWS, ROW_ROOT, actionCounts, clearRow, deriveTotals, readRow, readRowPerCpu, writeRow, type Counters,
} from './stats.js';

export const ROOT_OBJECT = 'xdp_root.o';
export const ROOT_PROGRAM = 'xdp_root';
export const SLOTS_MAP = 'xdplb_slots';
export const STATS_MAP = 'xdplb_stats';
export const MASK_MAP = '.data.xdplb';
/** The sample protocol's maps (bpf/include/xdplb/slot.h), shared like the
 *  two above by every program of the interface, keyed by their pin names. */
export const SAMPLE_MAPS = {
  [PIN.samples]: 'xdplb_samples', [PIN.sampling]: 'xdplb_sampling', [PIN.sample_stats]: 'xdplb_sample_stats',
} as const;
export type SampleMaps = Record<keyof typeof SAMPLE_MAPS, number>;
const SAMPLE_PINS = Object.keys(SAMPLE_MAPS) as Array<keyof typeof SAMPLE_MAPS>;

export class RootArray {
  /** Ids are read once: they identify the kernel objects behind the fds. */
  readonly rootId: number;
  readonly slotsId: number;
  readonly statsId: number;

  private constructor(
    readonly rootFd: number,
    readonly slotsFd: number,
    readonly statsFd: number,
    readonly maskFd: number,
    /** Null for a root pinned without the sample protocol's maps. */
    readonly sampleFds: SampleMaps | null,
    /** Where it is pinned: the directory whose lock serializes changes. */
    private dir: string | null,
  ) {
    this.rootId = progInfo(rootFd).id;
    this.slotsId = mapInfo(slotsFd).id;
    this.statsId = mapInfo(statsFd).id;
  }

  /** Load a new root into the kernel, not pinned and not attached. */
  static load(objectPath = bpfObject(ROOT_OBJECT)): RootArray {
    const obj = BpfObject.open(objectPath);
    try {
      obj.load();
      // Keep our own fds: the object's close() releases its own.
      return new RootArray(
        dupFd(obj.programFd(ROOT_PROGRAM)),
        dupFd(obj.mapFd(SLOTS_MAP)),
        dupFd(obj.mapFd(STATS_MAP)),
        dupFd(obj.mapFd(MASK_MAP)),
        Object.fromEntries(SAMPLE_PINS.map((pin) => [pin, dupFd(obj.mapFd(SAMPLE_MAPS[pin]))])) as SampleMaps,
        null,
      );
    } finally {
      obj.close();
    }
  }

  /** Open the root pinned in `dir`; null when none is pinned there. */
  static openPinned(dir: string): RootArray | null {
    if (!existsSync(dir)) return null;
    const fds: number[] = [];
    const samples: number[] = [];
    try {
      for (const name of [PIN.root, PIN.slots, PIN.stats]) {
        const fd = openPinned(join(dir, name));
        if (fd === null) {
          throw new XdplbError(`incomplete root array pins in ${dir}: ${name} is missing; run xdp-root --detach to clean up`);
        }
        fds.push(fd);
      }
      // Another version's counters cannot be read or written with ours, and
      // its slots would not take our programs.
      const stats = mapInfo(fds[2]);
      if (stats.valueSize !== COUNTERS_SIZE || stats.maxEntries !== ROWS) {
        throw new XdplbError(
          `the root array pinned in ${dir} was attached by another version of xdplb (its counters differ): ` +
            `run xdp-root --detach --interface ${basename(dir)} and --attach again`,
        );
      }
      const mask = openPinned(join(dir, PIN.slot_mask));
      if (mask === null) {
        throw new XdplbError(`incomplete root array pins in ${dir}: ${PIN.slot_mask} is missing; run xdp-root --detach to clean up`);
      }
      fds.push(mask);
      // Without the sample protocol's pins (pins from before it are refused
      // above, by their counters; these were removed) the root still works,
      // only sampling is unavailable (see sampleMaps()).
      for (const pin of SAMPLE_PINS) {
        const fd = openPinned(join(dir, pin));
        if (fd !== null) samples.push(fd);
      }
      if (samples.length === SAMPLE_PINS.length) {
        return new RootArray(fds[0], fds[1], fds[2], fds[3], Object.fromEntries(SAMPLE_PINS.map((pin, i) => [pin, samples[i]])) as SampleMaps, dir);
      }
      samples.forEach(closeFd);
      samples.length = 0;
      return new RootArray(fds[0], fds[1], fds[2], fds[3], null, dir);
    } catch (err) {
      [...fds, ...samples].forEach(closeFd);
      throw err;
    }
  }

  pin(dir: string): void {
    ensurePinDir(dir);
    const pinned: string[] = [];
    try {
      const pins: Array<[string, number]> = [
        [PIN.root, this.rootFd], [PIN.slots, this.slotsFd], [PIN.stats, this.statsFd], [PIN.slot_mask, this.maskFd],
      ];
      if (this.sampleFds) for (const pin of SAMPLE_PINS) pins.push([pin, this.sampleFds[pin]]);
      for (const [name, fd] of pins) {
        pinObject(fd, join(dir, name));
        pinned.push(join(dir, name));
      }
    } catch (err) {
      pinned.forEach((p) => unlinkSync(p));
      throw err;
    }
    this.dir = dir;
  }

  /** Program id in each slot, 0 for an empty slot. */
  slotIds(): number[] {
    return Array.from({ length: SLOTS }, (_, slot) => {
      const id = mapLookup(this.slotsFd, slotKey(slot), 4);
      return id ? id.readUInt32LE(0) : 0;
    });
  }

  /** The slots the root and xdplb_return() tail-call: bit i for slot i. */
  slotMask(): number {
    return mapLookup(this.maskFd, slotKey(0), 4)!.readUInt32LE(0);
  }

  /** Every fill and every emptying of a slot comes here, so the mask stays
   *  true: the mask is written from the array as it is, under the pin
   *  directory's lock (processes attaching different subprograms to one
   *  interface run at once, and a read-modify-write would lose a bit). As it
   *  is rewritten whole, a slot changed by another tool is taken in by the
   *  next change made here. */
  private writeMask(without = -1): void {
    const mask = this.slotIds().reduce((m, id, slot) => (id && slot !== without ? m | (1 << slot) : m), 0);
    const value = Buffer.alloc(4);
    value.writeUInt32LE(mask >>> 0);
    mapUpdate(this.maskFd, slotKey(0), value);
  }

  /** Put a program into a slot: one map update, atomic for the data path,
   *  then its bit, so that the bit never names an empty slot. */
  setSlot(slot: number, progFd: number): void {
    const value = Buffer.alloc(4);
    value.writeInt32LE(progFd);
    this.locked(() => {
      mapUpdate(this.slotsFd, slotKey(slot), value);
      this.writeMask();
    });
  }

  /** Empty a slot: its bit first, so the root stops calling it before it
   *  goes. False when it was empty already. */
  clearSlot(slot: number): boolean {
    return this.locked(() => {
      this.writeMask(slot);
      return mapDelete(this.slotsFd, slotKey(slot));
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

  /** Changes to the slots, the mask and the counters' baselines, one
   *  process at a time per interface (see writeMask()). */
  private locked<T>(fn: () => T, shared = false): T {
    return this.dir ? withDirLock(this.dir, fn, shared) : fn();
  }

  /** Counters of a slot (0..7) since it last restarted, or of the root's
   *  own fall-through (ROW_ROOT). */
  counters(row: number): Counters {
    if (row === ROW_ROOT) return actionCounts(readRow(this.statsFd, row));
    // The baseline first: read after the row, it could be a newer one.
    const baseline = readRow(this.statsFd, BASELINE_ROW + row);
    return actionCounts(readRow(this.statsFd, row), baseline);
  }

  /** The interface totals, what the kernel finally did with each packet,
   *  derived from the rows as the kernel wrote them (see stats.ts). */
  totals(): Counters {
    return deriveTotals(
      Array.from({ length: SLOTS }, (_, slot) => readRow(this.statsFd, slot)),
      readRow(this.statsFd, ROW_ROOT),
    );
  }

  /** Restart a slot's counters: its row is left to the kernel and its
   *  baseline becomes what it holds now, so the totals keep every packet.
   *  Without a slot, zero every counter, totals included. */
  clearCounters(slot?: number): void {
    this.locked(() => {
      if (slot !== undefined) {
        writeRow(this.statsFd, BASELINE_ROW + slot, readRowPerCpu(this.statsFd, slot));
        return;
      }
      // Baselines first, so that a reader in between never sees a row below
      // its baseline.
      for (let s = 0; s < SLOTS; s++) clearRow(this.statsFd, BASELINE_ROW + s);
      for (let row = 0; row <= ROW_ROOT; row++) clearRow(this.statsFd, row);
    });
  }

  /** The sample protocol's maps, or an error an operator can act on. */
  sampleMaps(ifname: string): SampleMaps {
    if (!this.sampleFds) {
      throw new XdplbError(
        `the root array on ${ifname} was attached by an older xdplb without the sample ring buffer: ` +
          `run xdp-root --detach --interface ${ifname} and --attach again`,
      );
    }
    return this.sampleFds;
  }

  close(): void {
    [this.rootFd, this.slotsFd, this.statsFd, this.maskFd, ...Object.values(this.sampleFds ?? {})].forEach(closeFd);
  }
}

export function slotKey(slot: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(slot);
  return key;
}

/** Whether a program id still names a live program (and what it is). */
export function describeProg(id: number) {
  const fd = progFdById(id);
  return fd === null ? null : withFd(fd, progInfo);
}

/** Remove a directory of pins (bpffs files unlink like any other). */
export function removePins(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
