// The decapsulator's Prometheus metrics, read at each scrape from what its
// status reads: every counter of its stats (STATS, whatever it holds), by
// interface; packets in one family and bytes in another, by `counter`.
import { family, type Collector, type FamilySpec, type MetricFamily, type Sample } from '../contract.js';
import { STATS } from './layout.js';
import { decapStatus } from './status.js';

export const DECAP_FAMILIES = {
  packets: {
    name: 'xdplb_decap_packets_total', type: 'counter', labels: ['interface', 'counter'],
    help: 'Packets the decapsulator counted, by counter: decapsulated by tunnel and inner family (ipip4, ipip6, gue4, gue6), tunnel packets for other addresses passed on (not_ours), malformed tunnel packets dropped; of a stateless VIP\'s TCP, delivered to a local socket or as a SYN (delivered), sent on to the previous backend (chained), delivered with no socket and nowhere to chain (unowned).',
  },
  bytes: { name: 'xdplb_decap_bytes_total', type: 'counter', labels: ['interface', 'counter'], help: 'Bytes of the frames the decapsulator took apart, as they arrived (counter "decapsulated").' },
  tunnel: {
    name: 'xdplb_decap_tunnel_info', type: 'gauge', labels: ['interface', 'tunnel_ipv4', 'tunnel_ipv6', 'gue_port'],
    help: 'What the decapsulator takes packets for: its tunnel addresses and GUE port (0: none).',
  },
} as const satisfies Record<string, FamilySpec>;
const F = DECAP_FAMILIES;

/** A stats field of bytes: `bytes` (what was decapsulated) or `<what>_bytes`. */
const bytesOf = (stat: string) => (stat === 'bytes' ? 'decapsulated' : stat.endsWith('_bytes') ? stat.slice(0, -'_bytes'.length) : null);

export function decapCollector(ifnames: () => string[]): Collector {
  return {
    name: 'decap',
    families(): MetricFamily[] {
      const wanted = new Set(ifnames());
      const packets: Sample[] = [];
      const bytes: Sample[] = [];
      const info: Sample[] = [];
      for (const [ifname, s] of Object.entries(decapStatus()).filter(([n]) => wanted.has(n))) {
        for (const stat of STATS) {
          const b = bytesOf(stat);
          (b ? bytes : packets).push({ labels: { interface: ifname, counter: b ?? stat }, value: s.stats[stat] });
        }
        const c = s.configuration;
        info.push({ labels: { interface: ifname, tunnel_ipv4: c.tunnel_ipv4 ?? '', tunnel_ipv6: c.tunnel_ipv6 ?? '', gue_port: String(c.gue_port) }, value: 1 });
      }
      return [family(F.packets, packets), family(F.bytes, bytes), family(F.tunnel, info)];
    },
  };
}
