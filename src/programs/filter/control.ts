// What xdp-filter does to interfaces: put the filter in a slot and configure
// it, take it out, edit the drop lists, zero the counters. Every request is
// checked on every interface before the first one is changed.
import { existsSync } from 'node:fs';
import { XdplbError } from '../../errors.js';
import { interfaceIndex } from '../../net/interface.js';
import { requireRoot, unloadSlot } from '../../root/slot.js';
import { subprogramDir } from '../../root/layout.js';
import { attachSubprogram, checkPlacement, detachSubprogram, findSubprogram } from '../../root/subprogram.js';
import type { FilterConfig } from './config.js';
import { FILTER } from './layout.js';
import { FilterMaps } from './maps.js';
import type { Prefix } from './prefix.js';

export interface AttachResult {
  ifname: string;
  slot: number;
  id: number;
  changed: boolean;
  config: FilterConfig;
}

/** The interface exists here and has a root array; where the filter is. */
function inspect(ifname: string): { slot: number; id: number } | null {
  interfaceIndex(ifname);
  const root = requireRoot(ifname);
  try {
    return findSubprogram(root, FILTER);
  } finally {
    root.close();
  }
}

/** Place the filter in `slot` of each interface (where it is not there yet)
 *  and apply `changes` to its configuration in one map update. An interface
 *  that already runs it keeps its program, lists and counters. */
export function attachFilter(ifnames: string[], slot: number, changes: Partial<FilterConfig>): AttachResult[] {
  for (const ifname of ifnames) {
    interfaceIndex(ifname);
    const root = requireRoot(ifname);
    try {
      checkPlacement(root, ifname, FILTER, slot);
    } finally {
      root.close();
    }
  }
  // Undoing an attach that reused maps pinned from before (the slot was
  // emptied with xdp-root --unload) empties the slot but keeps those maps.
  const pinnedBefore = new Set(ifnames.filter((i) => existsSync(subprogramDir(i, FILTER.name))));
  const placed: Array<{ ifname: string; slot: number; id: number; changed: boolean }> = [];
  try {
    for (const ifname of ifnames) placed.push(attachSubprogram(ifname, FILTER, slot));
  } catch (err) {
    for (const p of placed.filter((x) => x.changed)) {
      if (pinnedBefore.has(p.ifname)) unloadSlot(p.ifname, p.slot);
      else detachSubprogram(p.ifname, FILTER);
    }
    throw err;
  }
  return placed.map((p) => {
    const maps = FilterMaps.open(p.ifname);
    try {
      const config = { ...maps.config(), ...changes };
      maps.setConfig(config);
      return { ...p, config };
    } finally {
      maps.close();
    }
  });
}

/** Take the filter out of each interface; false where it was not there. */
export function detachFilter(ifnames: string[]): Array<{ ifname: string; changed: boolean }> {
  ifnames.forEach(inspect);
  return ifnames.map((ifname) => ({ ifname, changed: detachSubprogram(ifname, FILTER) }));
}

/** Run `fn` with the filter maps of every interface, all opened (and so
 *  checked) before it runs. */
export function withAllFilters<T>(ifnames: string[], fn: (all: Array<{ ifname: string; maps: FilterMaps }>) => T): T {
  const opened: Array<{ ifname: string; maps: FilterMaps }> = [];
  try {
    for (const ifname of ifnames) {
      if (!inspect(ifname)) {
        throw new XdplbError(`xdp-filter is not attached to ${ifname}: run xdp-filter --attach --interface ${ifname} first`);
      }
      opened.push({ ifname, maps: FilterMaps.open(ifname) });
    }
    return fn(opened);
  } finally {
    opened.forEach((o) => o.maps.close());
  }
}

/** `fn` on each interface's filter maps in turn, once all are open. */
export function withFilters<T>(ifnames: string[], fn: (maps: FilterMaps, ifname: string) => T): T[] {
  return withAllFilters(ifnames, (all) => all.map(({ maps, ifname }) => fn(maps, ifname)));
}

/** List the prefixes on every interface: refused before any change when a
 *  list would overflow, and undone everywhere if an update fails. */
export function dropPrefixes(ifnames: string[], prefixes: Prefix[], tags: string[]): void {
  const entries = prefixes.map((prefix, i) => ({ prefix, tag: tags[i] }));
  withAllFilters(ifnames, (all) => {
    for (const { maps, ifname } of all) maps.checkRoom(prefixes, ifname);
    const now = new Date();
    const undo: Array<() => void> = [];
    try {
      for (const { maps } of all) undo.push(maps.addAll(entries, now));
    } catch (err) {
      undo.reverse().forEach((u) => u());
      throw err;
    }
  });
}

/** Prefixes removed per interface (those not listed are skipped). */
export function undropPrefixes(ifnames: string[], prefixes: Prefix[]): Array<{ ifname: string; removed: Prefix[] }> {
  return withFilters(ifnames, (maps, ifname) => ({ ifname, removed: maps.remove(prefixes) }));
}
