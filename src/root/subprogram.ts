// A subprogram that ships with xdplb (filter, load balancer, sampler) as one
// instance per interface: which slot it is in, its maps pinned per interface
// and, for state every interface shares, once under the shared directory.
import { existsSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { closeFd, openPinned, progFullName, progInfo } from '../libbpf/index.js';
import { XdplbError } from '../errors.js';
import { bpfObject, sharedDir, subprogramDir, interfaceDir } from './layout.js';
import { RootArray, describeProg } from './array.js';
import { loadSlotProgram, requireRoot } from './slot.js';
import { pinnedInterfaces } from './status.js';

export interface SubprogramSpec {
  /** The noun in paths, messages and command names: 'filter' (xdp-filter). */
  name: string;
  /** Object file in the BPF object directory, e.g. 'xdp_filter.o'. */
  object: string;
  /** Program (function) name in the object, e.g. 'xdp_filter'. */
  program: string;
  defaultSlot: number;
  /** Maps kept per interface, under /sys/fs/bpf/xdplb/<if>/<name>/ (each
   *  as pinName() of its map name). */
  interfaceMaps: string[];
  /** Maps shared by every interface, under .../program-shared-state/<name>/. */
  sharedMaps?: string[];
}

/** The slot holding this subprogram on a root array, or null. */
export function findSubprogram(root: RootArray, spec: SubprogramSpec): { slot: number; id: number } | null {
  const ids = root.slotIds();
  for (let slot = 0; slot < ids.length; slot++) {
    if (!ids[slot]) continue;
    const info = describeProg(ids[slot]);
    if (info && progFullName(info) === spec.program) return { slot, id: ids[slot] };
  }
  return null;
}

export interface SubprogramAttach {
  ifname: string;
  slot: number;
  id: number;
  changed: boolean;
}

/** Where the subprogram is on this root array, once it is clear it can be
 *  placed in `slot`: refused when it sits in another slot, or when another
 *  program holds `slot` (unless `replace`). */
export function checkPlacement(
  root: RootArray, ifname: string, spec: SubprogramSpec, slot: number, replace = false,
): { slot: number; id: number } | null {
  const current = findSubprogram(root, spec);
  if (current && current.slot !== slot) {
    throw new XdplbError(
      `${spec.program} is already in slot ${current.slot} of ${ifname}, not ${slot}: ` +
        `run xdp-${spec.name} --detach --interface ${ifname} first to move it`,
    );
  }
  const occupant = root.slotIds()[slot];
  if (!current && occupant && !replace) {
    const info = describeProg(occupant);
    throw new XdplbError(
      `slot ${slot} of ${ifname} already holds '${info ? progFullName(info) : '?'}' (id ${occupant}): ` +
        'choose another --slot or empty it with xdp-root --unload',
    );
  }
  return current;
}

/** Put the subprogram into a slot of the interface's root array. Idempotent
 *  when it is already in that slot; its pinned maps are reused, so its
 *  configuration survives being attached again. */
export function attachSubprogram(
  ifname: string, spec: SubprogramSpec, slot: number, opts: { replace?: boolean } = {},
): SubprogramAttach {
  const root = requireRoot(ifname);
  try {
    const current = checkPlacement(root, ifname, spec, slot, opts.replace);
    if (current) return { ifname, slot, id: current.id, changed: false };
    const pins = [{ dir: subprogramDir(ifname, spec.name), maps: spec.interfaceMaps }];
    if (spec.sharedMaps?.length) pins.push({ dir: sharedDir(spec.name), maps: spec.sharedMaps });
    const fd = loadSlotProgram(root, { object: bpfObject(spec.object), program: spec.program, slot, pins });
    try {
      root.clearCounters(slot);
      root.setSlot(slot, fd);
      return { ifname, slot, id: progInfo(fd).id, changed: true };
    } finally {
      closeFd(fd);
    }
  } finally {
    root.close();
  }
}

/** Take the subprogram out of its slot and drop its per-interface pins (and
 *  the shared ones once no interface runs it). False when it was not there. */
export function detachSubprogram(ifname: string, spec: SubprogramSpec): boolean {
  const root = requireRoot(ifname);
  let found: { slot: number } | null;
  try {
    found = findSubprogram(root, spec);
    if (found) {
      root.clearSlot(found.slot);
      root.clearCounters(found.slot);
    }
  } finally {
    root.close();
  }
  rmSync(subprogramDir(ifname, spec.name), { recursive: true, force: true });
  if (spec.sharedMaps?.length && !pinnedInterfaces().some((i) => runsOn(i, spec))) {
    rmSync(sharedDir(spec.name), { recursive: true, force: true });
    // The parent goes too once no subprogram keeps shared state in it.
    try {
      rmdirSync(dirname(sharedDir(spec.name)));
    } catch {
      // not empty, or already gone
    }
  }
  return !!found;
}

function runsOn(ifname: string, spec: SubprogramSpec): boolean {
  const root = RootArray.openPinned(interfaceDir(ifname));
  if (!root) return false;
  try {
    return findSubprogram(root, spec) !== null;
  } finally {
    root.close();
  }
}

/** Open one of the subprogram's pinned maps on an interface (caller closes),
 *  or say how to get it there. */
export function openSubprogramMap(ifname: string, spec: SubprogramSpec, map: string, shared = false): number {
  const path = join(shared ? sharedDir(spec.name) : subprogramDir(ifname, spec.name), map);
  const fd = existsSync(path) ? openPinned(path) : null;
  if (fd === null) {
    throw new XdplbError(
      `xdp-${spec.name} is not attached to ${ifname}: run xdp-${spec.name} --attach --interface ${ifname} first`,
    );
  }
  return fd;
}
