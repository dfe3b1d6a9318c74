// The filter's status per interface, read back from its pinned maps: the
// ecbpf xdp_filter shape (configuration, stats), plus the drop lists.
import { existsSync } from 'node:fs';
import { XdplbError } from '../../errors.js';
import { subprogramDir } from '../../root/layout.js';
import { pinnedInterfaces } from '../../root/status.js';
import { FILTER } from './layout.js';
import { FilterMaps, type FilterStats } from './maps.js';
import { withFilters } from './control.js';
import { formatAddress } from './prefix.js';

export interface FilterStatus {
  configuration: { frags_drop: boolean; ptb_send: boolean; ptb_max_pps: number };
  stats: FilterStats;
  source_drops: Array<{ address: string; prefix_len: number; tag: string; load_time: Date; hits: bigint }>;
}

export function readStatus(maps: FilterMaps): FilterStatus {
  const cfg = maps.config();
  return {
    configuration: { frags_drop: cfg.frags_drop, ptb_send: cfg.ptb_max_pps > 0, ptb_max_pps: cfg.ptb_max_pps },
    stats: maps.stats(),
    source_drops: maps.list().map((p) => ({
      address: formatAddress(p.family, p.addr), prefix_len: p.len, tag: p.tag, load_time: p.loadTime, hits: p.hits,
    })),
  };
}

/** The named interfaces (each must run the filter), or every interface
 *  whose filter pins exist. */
export function filterStatus(ifnames?: string[]): Record<string, FilterStatus> {
  if (ifnames) {
    const all = withFilters(ifnames, (maps) => readStatus(maps));
    return Object.fromEntries(ifnames.map((n, i) => [n, all[i]]));
  }
  const out: Record<string, FilterStatus> = {};
  for (const ifname of pinnedInterfaces()) {
    if (!existsSync(subprogramDir(ifname, FILTER.name))) continue;
    let maps: FilterMaps;
    try {
      maps = FilterMaps.open(ifname);
    } catch (err) {
      if (err instanceof XdplbError) continue; // detached while we looked
      throw err;
    }
    try {
      out[ifname] = readStatus(maps);
    } finally {
      maps.close();
    }
  }
  return out;
}
