// The filter's status per interface, read back from its pinned maps: the
// ecbpf xdp_filter shape (configuration, stats), plus the drop lists.
import { programIfaces } from '../../root/place.js';
import { formatTime, table } from '../../format.js';
import { rateAt, withRate, type RateTree } from '../../rates.js';
import { FILTER, STATS } from './layout.js';
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

/** The named interfaces (each must run the filter), or every interface of
 *  this namespace running it. */
export function filterStatus(ifnames?: string[]): Record<string, FilterStatus> {
  const names = ifnames ?? programIfaces(FILTER).map((p) => p.iface.name);
  const all = withFilters(names, (maps) => readStatus(maps));
  return Object.fromEntries(names.map((n, i) => [n, all[i]]));
}

export function formatStatus(all: Record<string, FilterStatus>, rates?: RateTree): string {
  const out: string[] = [];
  for (const [ifname, s] of Object.entries(all)) {
    const c = s.configuration;
    out.push(
      `=================== Status for interface '${ifname}' ===================`,
      'Current Configuration:',
      '',
      `frags_drop? ${c.frags_drop}`,
      `ptb_send? ${c.ptb_send}`,
      `ptb_max_pps: ${c.ptb_max_pps}`,
      '',
      `Drop Maps for interface '${ifname}':`,
      table(
        ['Address', 'PrefixLen', 'Tag', 'Load Time', 'Hits'],
        s.source_drops.map((d, i) => [d.address, d.prefix_len, d.tag, formatTime(d.load_time), withRate(d.hits, rateAt(rates, ifname, 'source_drops', i, 'hits'), '/s')]),
      ),
      '',
      `Stats for interface '${ifname}':`,
      '',
      ...STATS.map((name) => `${name}: ${withRate(s.stats[name], rateAt(rates, ifname, 'stats', name), '/s')}`),
    );
  }
  if (!out.length) out.push('xdp-filter is not attached to any interface.');
  return out.join('\n');
}
