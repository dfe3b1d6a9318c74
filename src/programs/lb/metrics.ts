// The load balancer's Prometheus metrics, read at each scrape from what its
// status reads: per VIP and per backend traffic both ways, new connections,
// and on the VIP the drops and lookups that did not go well; the tables'
// fill and the backends' weights. The balancer's state is the network
// namespace's, whatever interface it runs on.
import type { Collector, MetricFamily, Sample } from '../contract.js';
import { vipName } from './config.js';
import type { LbCounters } from './layout.js';
import { lbStatus } from './status.js';

const VIP_EVENTS: Array<[keyof LbCounters, string]> = [
  ['conn_misses', 'conn_miss'], ['no_backend', 'no_backend'], ['nat_exhausted', 'nat_exhausted'],
  ['fib_no_neigh', 'fib_no_neigh'], ['fib_failures', 'fib_failed'], ['icmp_errors', 'icmp_translated'],
];

export function lbCollector(): Collector {
  return {
    name: 'lb',
    families(): MetricFamily[] {
      const s = lbStatus();
      if (!s.loaded) return [];
      const packets: Sample[] = [];
      const bytes: Sample[] = [];
      const conns: Sample[] = [];
      const events: Sample[] = [];
      const bePackets: Sample[] = [];
      const beBytes: Sample[] = [];
      const beConns: Sample[] = [];
      const weight: Sample[] = [];
      for (const v of s.vips) {
        const vip = vipName(v);
        packets.push({ labels: { vip, direction: 'in' }, value: v.counters.packets }, { labels: { vip, direction: 'reply' }, value: v.counters.reply_packets });
        bytes.push({ labels: { vip, direction: 'in' }, value: v.counters.bytes }, { labels: { vip, direction: 'reply' }, value: v.counters.reply_bytes });
        conns.push({ labels: { vip }, value: v.counters.new_conns });
        for (const [k, event] of VIP_EVENTS) events.push({ labels: { vip, event }, value: v.counters[k] });
        for (const b of v.backends) {
          const backend = `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}`;
          bePackets.push({ labels: { vip, backend, direction: 'in' }, value: b.counters.packets }, { labels: { vip, backend, direction: 'reply' }, value: b.counters.reply_packets });
          beBytes.push({ labels: { vip, backend, direction: 'in' }, value: b.counters.bytes }, { labels: { vip, backend, direction: 'reply' }, value: b.counters.reply_bytes });
          beConns.push({ labels: { vip, backend }, value: b.counters.new_conns });
          weight.push({ labels: { vip, backend, state: b.removed ? 'removed' : 'active' }, value: b.removed ? 0 : b.weight });
        }
      }
      const counter = (name: string, help: string, samples: Sample[]): MetricFamily => ({ name, help, type: 'counter', samples });
      const gauge = (name: string, help: string, samples: Sample[]): MetricFamily => ({ name, help, type: 'gauge', samples });
      return [
        counter('xdplb_lb_vip_packets_total', 'Packets of a VIP\'s flows, toward the backends (in) and back (reply).', packets),
        counter('xdplb_lb_vip_bytes_total', 'Bytes of a VIP\'s flows, toward the backends (in) and back (reply).', bytes),
        counter('xdplb_lb_vip_connections_total', 'New connections (flows) a VIP took.', conns),
        counter('xdplb_lb_vip_events_total', 'Packets of a VIP that missed the connection table, found no backend or NAT port, an unresolved neighbour or no route, and ICMP errors translated.', events),
        counter('xdplb_lb_backend_packets_total', 'Packets of a backend\'s flows, both ways.', bePackets),
        counter('xdplb_lb_backend_bytes_total', 'Bytes of a backend\'s flows, both ways.', beBytes),
        counter('xdplb_lb_backend_connections_total', 'New connections a backend took.', beConns),
        gauge('xdplb_lb_backend_weight', 'A backend\'s weight in its VIP\'s table (0: drained; removed backends finish their flows).', weight),
        gauge('xdplb_lb_connections', 'Entries in the connection table.', [{ value: s.connections }]),
        gauge('xdplb_lb_connections_max', 'Size of the connection table.', [{ value: s.connections_max }]),
        gauge('xdplb_lb_nat_ports', 'NAT ports in use.', [{ value: s.nat_ports }]),
        gauge('xdplb_lb_nat_ports_max', 'Size of the NAT table.', [{ value: s.nat_ports_max }]),
        gauge('xdplb_lb_attached', 'Interfaces the balancer runs on.', Object.keys(s.interfaces).map((i) => ({ labels: { interface: i }, value: 1 }))),
      ];
    },
  };
}
