// Loading a subprogram for one slot of one root array: the object's copies of
// the shared maps become the root's, its slot number is written before load,
// and it must actually use the slot protocol unless forced.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, PROG_TYPE_XDP, dupFd, progInfo, closeFd, openPinned, pinObject } from '../libbpf/index.js';
import { UsageError, XdplbError } from '../errors.js';
import { SLOTS, checkMarker, ensureProgramDir } from './pins.js';
import { COUNTERS_SIZE } from './stats.js';
import { ABI_VERSION } from '../version.js';
import { RootArray, SHARED_MAPS, SLOTS_MAP, STATS_MAP } from './array.js';

/** The section holding `const volatile struct xdplb_self` (bpf/include/xdplb/slot.h):
 *  the slot (u32), then the ABI the object was built against (u32). */
export const SLOT_SECTION = '.rodata.xdplb';
const SELF_SIZE = 8;

export interface SlotProgramRequest {
  object: string;
  program: string;
  slot: number;
  /** Load a program that does not follow the slot protocol. */
  force?: boolean;
  /** The program's own maps kept in bpffs, per directory: a map already
   *  pinned there (under pinName()) is reused (its contents survive a
   *  reload), any other is pinned there after load. State another ABI
   *  pinned is refused with `recovery`. */
  pins?: Array<{ dir: string; maps: string[]; recovery: string }>;
}

const GLOBAL_SECTION = '.data.';

/** A map's file in its pin directory: its name, but a global's section map
 *  (`.data.<name>`, which libbpf names after the section) as <name>. */
export function pinName(map: string): string {
  return map.startsWith(GLOBAL_SECTION) ? map.slice(GLOBAL_SECTION.length) : map;
}

export function parseSlot(value: unknown): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) >= SLOTS) {
    throw new UsageError(`invalid slot '${text}': expected a whole number from 0 to ${SLOTS - 1}`);
  }
  return Number(text);
}

/** Load the program; returns an fd the caller owns (close it once the
 *  program is in the array, which holds its own reference). */
export function loadSlotProgram(root: RootArray, req: SlotProgramRequest): number {
  if (!existsSync(req.object)) {
    throw new XdplbError(`object file '${req.object}' not found: expected a BPF ELF object built with clang -target bpf`);
  }
  const obj = BpfObject.open(req.object);
  try {
    if (!obj.hasProgram(req.program)) {
      const names = obj.programNames();
      throw new XdplbError(
        `no program '${req.program}' in ${req.object}: expected one of ${names.length ? names.join(', ') : '(none)'}`,
      );
    }
    if (obj.programType(req.program) !== PROG_TYPE_XDP) {
      throw new XdplbError(`program '${req.program}' in ${req.object} is not an XDP program: expected SEC("xdp")`);
    }
    const shared = [SLOTS_MAP, STATS_MAP].filter((m) => obj.hasMap(m));
    const self = obj.data(SLOT_SECTION);
    if ((shared.length < 2 || !self) && !req.force) {
      throw notConforming(req, 'its object lacks the xdplb_slots/xdplb_stats maps or the xdplb_slot variable');
    }
    // Built against another <xdplb/slot.h>, it would write its counters at
    // the wrong places of ours (the verifier only checks the value size).
    const abi = self && self.length === SELF_SIZE ? self.readUInt32LE(4) : null;
    const sameAbi = abi === ABI_VERSION && shared.includes(STATS_MAP) && obj.mapValueSize(STATS_MAP) === COUNTERS_SIZE;
    if (self && shared.length === 2 && !sameAbi && !req.force) {
      throw new XdplbError(
        `program '${req.program}' in ${req.object} was built against another version of <xdplb/slot.h> ` +
          `(ABI ${abi ?? 'from before ABI versions'}, not ${ABI_VERSION}): ` +
          'rebuild it against this one, or pass --force to load it anyway (it will not count)',
      );
    }
    const sameCounters = sameAbi;
    // The slot protocol's maps become the interface's; a forced object of
    // another ABI keeps its own counters (it would write ours wrongly).
    for (const [pin, map] of Object.entries(SHARED_MAPS)) {
      if (map === STATS_MAP && !sameCounters) continue;
      if (obj.hasMap(map)) obj.reuseMap(map, root.maps[pin as keyof typeof SHARED_MAPS].fd);
    }
    if (self) {
      const value = Buffer.from(self);
      value.writeUInt32LE(req.slot, 0);
      obj.setData(SLOT_SECTION, value);
    }
    const reused = reusePinnedMaps(obj, req.pins ?? []);
    try {
      obj.loadOnly(req.program);
      obj.load();
    } finally {
      reused.forEach(closeFd);
    }
    const fd = dupFd(obj.programFd(req.program));
    // Every verdict through xdplb_return() is counted, so a program that
    // follows the protocol refers to the stats map; one that merely declares
    // the maps does not.
    if (!req.force && !progInfo(fd).mapIds.includes(root.stats.id)) {
      closeFd(fd);
      throw notConforming(req, 'it never reaches xdplb_return(), so it would not count or chain');
    }
    try {
      pinNewMaps(obj, req.pins ?? []);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return fd;
  } finally {
    obj.close();
  }
}

function reusePinnedMaps(obj: BpfObject, pins: NonNullable<SlotProgramRequest['pins']>): number[] {
  const fds: number[] = [];
  try {
    for (const { dir, maps, recovery } of pins) {
      if (existsSync(dir)) checkMarker(dir, recovery);
      for (const name of maps) {
        const fd = openPinned(join(dir, pinName(name)));
        if (fd === null) continue;
        fds.push(fd);
        obj.reuseMap(name, fd);
      }
    }
  } catch (err) {
    fds.forEach(closeFd);
    throw err;
  }
  return fds;
}

function pinNewMaps(obj: BpfObject, pins: NonNullable<SlotProgramRequest['pins']>): void {
  const created: string[] = [];
  try {
    for (const { dir, maps } of pins) {
      ensureProgramDir(dir);
      for (const name of maps) {
        const path = join(dir, pinName(name));
        if (existsSync(path)) continue;
        pinObject(obj.mapFd(name), path);
        created.push(path);
      }
    }
  } catch (err) {
    created.forEach((p) => rmSync(p, { force: true }));
    throw err;
  }
}

function notConforming(req: SlotProgramRequest, why: string): XdplbError {
  return new XdplbError(
    `program '${req.program}' in ${req.object} does not use the slot protocol: ${why}; ` +
      'end it with `return xdplb_return(ctx, action);` from <xdplb/slot.h>, or pass --force to load it anyway',
  );
}

