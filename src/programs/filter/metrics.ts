// The filter's Prometheus metrics, read at each scrape from the maps its
// status reads: the ecbpf counters (one family, by reason), the drop lists'
// size, and hits of the most hit prefixes (bounded: a list holds up to
// 65,536 prefixes per family).
import { family, type Collector, type FamilySpec, type MetricFamily, type MetricsOptions, type Sample } from '../contract.js';
import { STATS, type StatName } from './layout.js';
import { filterStatus } from './status.js';

/** Counters that count packets dropped or answered, by reason label. */
const REASON: Record<StatName, string> = {
  eth_frame_err: 'eth_frame_err', ip_header_err: 'ip_header_err', ip6_header_err: 'ip6_header_err',
  ip_drop_count: 'ip_source_listed', ip6_drop_count: 'ip6_source_listed', ip_frag_drop_count: 'fragment',
  ptb_sent_count: 'ptb_sent', ptb_err_count: 'ptb_err', ptb_mem_err_count: 'ptb_mem_err',
};

export const FILTER_FAMILIES = {
  packets: { name: 'xdplb_filter_packets_total', type: 'counter', labels: ['interface', 'reason'], help: 'Packets the filter dropped or answered, by reason (ecbpf xdp_filter counters).' },
  prefixes: { name: 'xdplb_filter_prefixes', type: 'gauge', labels: ['interface', 'family'], help: 'Prefixes on the filter\'s drop lists, by family.' },
  fragsDrop: { name: 'xdplb_filter_frags_drop', type: 'gauge', labels: ['interface'], help: 'Whether the filter drops fragments (1) or not (0).' },
  hits: { name: 'xdplb_filter_prefix_hits_total', type: 'counter', labels: ['interface', 'prefix', 'tag'], help: 'Packets dropped by a listed prefix: the most hit prefixes only (metrics.top_prefixes).' },
} as const satisfies Record<string, FamilySpec>;
const F = FILTER_FAMILIES;

export function filterCollector(ifnames: () => string[], opts: MetricsOptions): Collector {
  return {
    name: 'filter',
    families(): MetricFamily[] {
      // The interfaces asked for where the filter runs (only those have its maps).
      const wanted = new Set(ifnames());
      const all = Object.entries(filterStatus()).filter(([n]) => wanted.has(n));
      const events: Sample[] = [];
      const prefixes: Sample[] = [];
      const hits: Sample[] = [];
      const fragsDrop: Sample[] = [];
      for (const [ifname, s] of all) {
        for (const stat of STATS) events.push({ labels: { interface: ifname, reason: REASON[stat] }, value: s.stats[stat] });
        const family = (a: string) => (a.includes(':') ? 'ipv6' : 'ipv4');
        for (const f of ['ipv4', 'ipv6']) prefixes.push({ labels: { interface: ifname, family: f }, value: s.source_drops.filter((d) => family(d.address) === f).length });
        fragsDrop.push({ labels: { interface: ifname }, value: s.configuration.frags_drop ? 1 : 0 });
        const top = [...s.source_drops].sort((a, b) => (b.hits > a.hits ? 1 : b.hits < a.hits ? -1 : 0)).slice(0, opts.top);
        for (const d of top) hits.push({ labels: { interface: ifname, prefix: `${d.address}/${d.prefix_len}`, tag: d.tag }, value: d.hits });
      }
      return [family(F.packets, events), family(F.prefixes, prefixes), family(F.fragsDrop, fragsDrop), family(F.hits, hits)];
    },
  };
}

