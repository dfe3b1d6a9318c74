// What xdp-filter does to interfaces beyond placing the filter: configure
// it, edit the drop lists, zero the counters. Every request is checked on
// every interface before the first one is changed, and undone everywhere
// if a change fails part way.
import { Undo } from '../../undo.js';
import { XdplbError } from '../../errors.js';
import { findProgram, withRoot, type Placed } from '../../root/place.js';
import { resolveIface, type Iface } from '../../root/pins.js';
import type { FilterConfig } from './config.js';
import { FILTER } from './layout.js';
import { FilterMaps } from './maps.js';
import { formatPrefix, type Prefix } from './prefix.js';

/** Apply `changes` over each placed filter's configuration, one map update
 *  each; returns the configuration each now has. */
export function configure(placed: Array<Pick<Placed, 'iface'>>, changes: Partial<FilterConfig>): FilterConfig[] {
  return placed.map(({ iface }) => {
    const maps = FilterMaps.open(iface);
    try {
      const config = { ...maps.config(), ...changes };
      maps.setConfig(config);
      return config;
    } finally {
      maps.close();
    }
  });
}

/** Run `fn` with the filter maps of every interface, all opened (and so
 *  checked) before it runs. */
export function withAllFilters<T>(ifnames: string[], fn: (all: Array<{ iface: Iface; maps: FilterMaps }>) => T): T {
  const opened: Array<{ iface: Iface; maps: FilterMaps }> = [];
  try {
    for (const name of ifnames) {
      const iface = resolveIface(name);
      if (!withRoot(iface, (root) => findProgram(root, FILTER))) {
        throw new XdplbError(`xdp-filter is not attached to ${name}: run xdp-filter --attach --interface ${name} first`);
      }
      opened.push({ iface, maps: FilterMaps.open(iface) });
    }
    return fn(opened);
  } finally {
    opened.forEach((o) => o.maps.close());
  }
}

/** `fn` on each interface's filter maps in turn, once all are open. */
export function withFilters<T>(ifnames: string[], fn: (maps: FilterMaps, iface: Iface) => T): T[] {
  return withAllFilters(ifnames, (all) => all.map(({ maps, iface }) => fn(maps, iface)));
}

/** List the prefixes on every interface: refused before any change when a
 *  list would overflow, and undone everywhere if an update fails. */
export function dropPrefixes(ifnames: string[], prefixes: Prefix[], tags: string[]): void {
  const entries = prefixes.map((prefix, i) => ({ prefix, tag: tags[i] }));
  withAllFilters(ifnames, (all) => {
    for (const { maps, iface } of all) maps.checkRoom(prefixes, iface.name);
    const now = new Date();
    Undo.run((undo) => {
      for (const { maps } of all) undo.push(maps.addAll(entries, now));
    });
  });
}

/** Prefixes removed per interface (those not listed are skipped). */
export function undropPrefixes(ifnames: string[], prefixes: Prefix[]): Array<{ ifname: string; removed: Prefix[] }> {
  return withFilters(ifnames, (maps, iface) => ({ ifname: iface.name, removed: maps.remove(prefixes) }));
}

/** Make each interface's drop lists hold exactly `want` (tags included):
 *  the room is checked on every interface before anything changes, then
 *  what is new is listed, what is gone removed, a changed tag re-listed.
 *  Returns one line per interface that changed. */
export function syncDropLists(ifaces: Iface[], want: Array<{ prefix: Prefix; tag: string }>): string[] {
  const wanted = new Map(want.map((d) => [formatPrefix(d.prefix), d]));
  const plans = ifaces.map((iface) => {
    const maps = FilterMaps.open(iface);
    const listed = maps.list();
    const stale = listed.filter((p) => wanted.get(formatPrefix(p))?.tag !== p.tag);
    const have = new Set(listed.filter((p) => !stale.includes(p)).map((p) => formatPrefix(p)));
    const add = want.filter((d) => !have.has(formatPrefix(d.prefix)));
    return { iface, maps, stale, add };
  });
  try {
    // Room for what the lists will hold once the stale entries are gone.
    for (const p of plans) p.maps.checkRoom(p.add.map((d) => d.prefix), p.iface.name, p.stale);
    const lines: string[] = [];
    Undo.run((undo) => {
      for (const p of plans) {
        if (!p.stale.length && !p.add.length) continue;
        const before = p.stale;
        if (before.length) {
          p.maps.remove(before);
          undo.push(() => p.maps.addListed(before));
        }
        if (p.add.length) undo.push(p.maps.addAll(p.add));
        lines.push(`${p.iface.name}: drop lists: ${p.add.length} listed, ${p.stale.length} removed`);
      }
    });
    return lines;
  } finally {
    plans.forEach((p) => p.maps.close());
  }
}
