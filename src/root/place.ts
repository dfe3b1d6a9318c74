// Putting programs into the slots of interfaces' root arrays and taking
// them out: `xdp-root --load/--unload` and every subprogram's attach and
// detach. Written once: a request naming several interfaces is checked on
// all of them first, then applied all-or-nothing (a failure part way takes
// back what the request did), and what a slot holds is decided under the
// interface's lock, so concurrent requests cannot both take one slot.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, closeFd, linkInfo, openPinned, progFullName, progInfo, describeProg, xdpQuery } from '../libbpf/index.js';
import { XdplbError } from '../errors.js';
import { Undo } from '../undo.js';
import { RootArray, removePins, slotTaken } from './array.js';
import { PIN, bpfObject, checkMarker, ifaceDir, pinnedIfaces, programDir, sharedDir, type Iface, type PinnedIface } from './pins.js';
import { loadSlotProgram, pinName, type SlotProgramRequest } from './slot.js';

/** What placing a program needs to know about it. */
export interface ProgramSpec {
  /** The noun in paths, messages and command names: 'filter' (xdp-filter). */
  name: string;
  /** Object file in the BPF object directory, e.g. 'xdp_filter.o'. */
  object: string;
  /** Program (function) name in the object, e.g. 'xdp_filter'. */
  program: string;
  defaultSlot: number;
  /** Maps kept per interface, in the interface's <name>/ directory. */
  interfaceMaps: readonly string[];
  /** Maps shared by every interface of the network namespace, in its
   *  <name>/ directory; they outlive the program's last detach. */
  sharedMaps?: readonly string[];
}

/** The interface's root array, which must be attached to it: pins whose
 *  device is gone (and whose ifindex a new device got) are not a root of
 *  this interface. */
export function openRoot(iface: Iface): RootArray {
  const dir = ifaceDir(iface);
  const root = RootArray.openPinned(dir, iface.name);
  if (root && attachedHere(root, dir, iface)) return root;
  root?.close();
  throw new XdplbError(
    `Root array not attached to interface ${iface.name}: run xdp-root --attach --interface ${iface.name} first`,
  );
}

function attachedHere(root: RootArray, dir: string, iface: Iface): boolean {
  const fd = openPinned(join(dir, PIN.link));
  if (fd !== null) {
    try {
      return linkInfo(fd).ifindex === iface.ifindex;
    } finally {
      closeFd(fd);
    }
  }
  const q = xdpQuery(iface.ifindex);
  return [q.drvProgId, q.skbProgId, q.hwProgId].includes(root.rootId);
}

/** Run `fn` with the interface's root array, closed afterwards. */
export function withRoot<T>(iface: Iface, fn: (root: RootArray) => T): T {
  const root = openRoot(iface);
  try {
    return fn(root);
  } finally {
    root.close();
  }
}

export interface LoadResult {
  ifname: string;
  slot: number;
  id: number;
  name: string;
  /** The id of the program it replaced, 0 when the slot was empty. */
  replaced: number;
}

/** Fill a slot with a program: refused when the slot is taken unless
 *  `replace`, decided under the interface's lock (the program is loaded
 *  first, and discarded if the slot was taken meanwhile). */
export function loadIntoSlot(iface: Iface, req: SlotProgramRequest & { replace?: boolean }): LoadResult {
  return withRoot(iface, (root) => {
    const current = root.slotIds()[req.slot];
    if (current && !req.replace) throw slotTaken(req.slot, iface.name, current, 'pass --replace to swap it atomically');
    const fd = loadSlotProgram(root, req);
    try {
      const replaced = root.fill(req.slot, fd, { replace: req.replace, ifname: iface.name });
      const info = progInfo(fd);
      return { ifname: iface.name, slot: req.slot, id: info.id, name: progFullName(info), replaced };
    } finally {
      closeFd(fd);
    }
  });
}

/** Empty a slot; false when it was empty already. */
export function unloadSlot(iface: Iface, slot: number): boolean {
  return withRoot(iface, (root) => root.empty(slot));
}

/** The slot holding this program on a root array, or null. */
export function findProgram(root: RootArray, spec: ProgramSpec): { slot: number; id: number } | null {
  const ids = root.slotIds();
  for (let slot = 0; slot < ids.length; slot++) {
    if (!ids[slot]) continue;
    const info = describeProg(ids[slot]);
    if (info && progFullName(info) === spec.program) return { slot, id: ids[slot] };
  }
  return null;
}

/** Where the program is on this root array, once it is clear it can be in
 *  `slot`: refused when it sits in another slot, or another program holds
 *  `slot`. */
function checkPlacement(root: RootArray, iface: Iface, spec: ProgramSpec, slot: number): { slot: number; id: number } | null {
  const current = findProgram(root, spec);
  if (current && current.slot !== slot) {
    throw new XdplbError(
      `${spec.program} is already in slot ${current.slot} of ${iface.name}, not ${slot}: ` +
        `run xdp-${spec.name} --detach --interface ${iface.name} first to move it`,
    );
  }
  const occupant = root.slotIds()[slot];
  if (!current && occupant) {
    throw slotTaken(slot, iface.name, occupant, 'choose another --slot or empty it with xdp-root --unload');
  }
  return current;
}

export function interfaceRecovery(spec: ProgramSpec, iface: Iface): string {
  return `run xdp-${spec.name} --detach --interface ${iface.name} and --attach again`;
}

export function sharedRecovery(spec: ProgramSpec): string {
  return `run xdp-${spec.name} --detach on every interface and xdp-${spec.name} --purge (its state goes with it), then attach again`;
}

function pinsOf(spec: ProgramSpec, iface: Iface): NonNullable<SlotProgramRequest['pins']> {
  const pins = [{ dir: programDir(iface, spec.name), maps: [...spec.interfaceMaps], recovery: interfaceRecovery(spec, iface) }];
  if (spec.sharedMaps?.length) pins.push({ dir: sharedDir(spec.name), maps: [...spec.sharedMaps], recovery: sharedRecovery(spec) });
  return pins;
}

export interface Placed {
  iface: Iface;
  slot: number;
  id: number;
  /** False when it was in that slot already (nothing was loaded). */
  changed: boolean;
}

/**
 * Put the program into `slot` of every interface, all or nothing: every
 * interface is checked first (root attached, program not elsewhere, slot
 * free or already its own), then each is filled; if one fails, the
 * interfaces this call filled are emptied again and the pins it created
 * removed. Idempotent: an interface already running it in that slot keeps
 * its program, maps and counters. Pinned maps are reused, so a program's
 * configuration survives being attached again.
 */
export function placeProgram(spec: ProgramSpec, ifaces: Iface[], slot: number, undo?: Undo): Placed[] {
  for (const iface of ifaces) withRoot(iface, (root) => checkPlacement(root, iface, spec, slot));
  const body = (u: Undo) => ifaces.map((iface) => withRoot(iface, (root) => placeOne(root, spec, iface, slot, u)));
  return undo ? body(undo) : Undo.run(body);
}

function placeOne(root: RootArray, spec: ProgramSpec, iface: Iface, slot: number, undo: Undo): Placed {
  const existing = findProgram(root, spec);
  if (existing && existing.slot === slot) return { iface, slot, id: existing.id, changed: false };
  const dir = programDir(iface, spec.name);
  const hadPins = existsSync(dir);
  const shared = spec.sharedMaps?.length ? sharedDir(spec.name) : null;
  const hadShared = !!shared && existsSync(shared);
  const fd = loadSlotProgram(root, { object: bpfObject(spec.object), program: spec.program, slot, pins: pinsOf(spec, iface) });
  if (!hadPins) undo.push(() => removePins(dir));
  if (shared && !hadShared) undo.push(() => removePins(shared));
  try {
    // Decided again under the lock: another process may have taken the slot.
    root.locked(() => {
      checkPlacement(root, iface, spec, slot);
      root.fill(slot, fd, { ifname: iface.name });
    });
    // `root` is closed once placed: the undo opens the interface's again.
    undo.push(() => withRoot(iface, (r) => r.empty(slot)));
    return { iface, slot, id: progInfo(fd).id, changed: true };
  } finally {
    closeFd(fd);
  }
}

/** Take the program out of its slot on each interface and drop its
 *  per-interface pins; its shared state stays (see purgeShared). False
 *  where it was not there. */
export function removeProgram(spec: ProgramSpec, ifaces: Iface[]): Array<{ iface: Iface; changed: boolean }> {
  const roots = ifaces.map((iface) => ({ iface, root: openRoot(iface) }));
  try {
    return roots.map(({ iface, root }) => {
      const found = root.locked(() => {
        const f = findProgram(root, spec);
        if (f) root.empty(f.slot);
        return f;
      });
      removePins(programDir(iface, spec.name));
      return { iface, changed: !!found };
    });
  } finally {
    roots.forEach(({ root }) => root.close());
  }
}

/** Interfaces of this namespace whose root array holds the program, with
 *  where; interfaces whose device is gone are left out. */
export function programIfaces(spec: ProgramSpec): Array<{ iface: PinnedIface; slot: number; id: number }> {
  const out: Array<{ iface: PinnedIface; slot: number; id: number }> = [];
  for (const p of pinnedIfaces()) {
    if (p.gone) continue;
    let root: RootArray | null;
    try {
      root = RootArray.openPinned(p.dir, p.name);
    } catch {
      continue; // another ABI: xdp-root --status says so
    }
    if (!root) continue;
    try {
      const found = findProgram(root, spec);
      if (found) out.push({ iface: p, ...found });
    } finally {
      root.close();
    }
  }
  return out;
}

/** Open named maps of the program from a pin directory (the interface's
 *  <name>/, or the namespace's for shared state), checked against this
 *  ABI; `missing` says what to run when they are not there. */
export function openPinnedMaps<K extends string>(
  dir: string, names: Record<K, string>, recovery: string, missing: string,
): Record<K, BpfMap> {
  if (!existsSync(dir)) throw new XdplbError(missing);
  checkMarker(dir, recovery);
  const maps: Partial<Record<K, BpfMap>> = {};
  try {
    for (const [key, name] of Object.entries(names) as Array<[K, string]>) {
      const map = BpfMap.openPinned(join(dir, pinName(name)));
      if (!map) throw new XdplbError(`${missing} (${pinName(name)} is missing from ${dir})`);
      maps[key] = map;
    }
  } catch (err) {
    Object.values<BpfMap>(maps as Record<K, BpfMap>).forEach((m) => m.close());
    throw err;
  }
  return maps as Record<K, BpfMap>;
}
