// The load balancer's Prometheus metrics, read at each scrape from what its
// status reads: per VIP and per backend traffic both ways, new connections,
// and on the VIP the drops and lookups that did not go well; the tables'
// fill and the backends' weights. The balancer's state is the network
// namespace's, whatever interface it runs on.
import { family, type Collector, type FamilySpec, type MetricFamily, type Sample } from '../contract.js';
import { vipName } from './config.js';
import { decodeVipKey, type LbCounters } from './layout.js';
import { closeLbMaps, lbInterfaces, openLbMaps } from './pins.js';
import { readState, type LbState } from './state.js';
import { CounterRows, tableFill } from './status.js';

const VIP_EVENTS: Array<[keyof LbCounters, string]> = [
  ['conn_misses', 'conn_miss'], ['no_backend', 'no_backend'], ['nat_exhausted', 'nat_exhausted'],
  ['fib_no_neigh', 'fib_no_neigh'], ['fib_failures', 'fib_failed'], ['icmp_errors', 'icmp_translated'],
  ['bad_checksum', 'bad_checksum'], ['encapsulated', 'encapsulated'], ['too_big', 'too_big'], ['icmp_forwarded', 'icmp_forwarded'],
];

const counter = (name: string, labels: string[], help: string): FamilySpec => ({ name, help, type: 'counter', labels });
const gauge = (name: string, labels: string[], help: string): FamilySpec => ({ name, help, type: 'gauge', labels });
const BACKEND = ['vip', 'backend', 'direction'];

export const LB_FAMILIES = {
  vipPackets: counter('xdplb_lb_vip_packets_total', ['vip', 'direction'], 'Packets of a VIP\'s flows, toward the backends (in) and back (reply).'),
  vipBytes: counter('xdplb_lb_vip_bytes_total', ['vip', 'direction'], 'Bytes of a VIP\'s flows, toward the backends (in) and back (reply).'),
  vipConns: counter('xdplb_lb_vip_connections_total', ['vip'], 'New connections (flows) a VIP took.'),
  vipEvents: counter('xdplb_lb_vip_events_total', ['vip', 'event'], 'Packets of a VIP that missed the connection table, found no backend or NAT port, an unresolved neighbour or no route, or had a bad IPv4 checksum; ICMP errors translated (NAT) or forwarded to a backend (DSR); packets encapsulated, and answered as too big once encapsulated.'),
  bePackets: counter('xdplb_lb_backend_packets_total', BACKEND, 'Packets of a backend\'s flows, both ways.'),
  beBytes: counter('xdplb_lb_backend_bytes_total', BACKEND, 'Bytes of a backend\'s flows, both ways.'),
  beConns: counter('xdplb_lb_backend_connections_total', ['vip', 'backend'], 'New connections a backend took.'),
  weight: gauge('xdplb_lb_backend_weight', ['vip', 'backend', 'state'], 'A backend\'s weight in its VIP\'s table (0: drained; removed backends finish their flows).'),
  conns: gauge('xdplb_lb_connections', [], 'Entries in the connection table.'),
  connsMax: gauge('xdplb_lb_connections_max', [], 'Size of the connection table.'),
  natPorts: gauge('xdplb_lb_nat_ports', [], 'NAT ports in use.'),
  natPortsMax: gauge('xdplb_lb_nat_ports_max', [], 'Size of the NAT table.'),
  attached: gauge('xdplb_lb_attached', ['interface'], 'Interfaces the balancer runs on.'),
} as const;
const F = LB_FAMILIES;

export function lbCollector(): Collector {
  return {
    name: 'lb',
    families(): MetricFamily[] {
      const maps = openLbMaps();
      if (!maps) return [];
      // Read as the status is, but without building its objects: 100 VIPs
      // x 100 backends make 60,000 series, and a scrape must stay cheap.
      let state: LbState;
      let vipRows: CounterRows;
      let rows: CounterRows;
      let fill: ReturnType<typeof tableFill>;
      try {
        state = readState(maps);
        // Rows up to the highest id in use, not the whole arrays.
        const upTo = (ids: Iterable<number>) => Math.max(-1, ...ids) + 1;
        vipRows = CounterRows.read(maps.lb_vip_stats, upTo([...state.vips.values()].map((v) => v.id)));
        rows = CounterRows.read(maps.lb_be_stats, upTo(state.backends.keys()));
        fill = tableFill(maps);
      } finally {
        closeLbMaps(maps);
      }
      const packets: Sample[] = [];
      const bytes: Sample[] = [];
      const conns: Sample[] = [];
      const events: Sample[] = [];
      const bePackets: Sample[] = [];
      const beBytes: Sample[] = [];
      const beConns: Sample[] = [];
      const weight: Sample[] = [];
      const names = new Map<number, string>();
      for (const v of [...state.vips.values()].sort((a, b) => a.id - b.id)) {
        const vip = vipName(decodeVipKey(v.key));
        names.set(v.id, vip);
        const c = (name: keyof LbCounters) => vipRows.get(v.id, name);
        packets.push({ labels: { vip, direction: 'in' }, value: c('packets') }, { labels: { vip, direction: 'reply' }, value: c('reply_packets') });
        bytes.push({ labels: { vip, direction: 'in' }, value: c('bytes') }, { labels: { vip, direction: 'reply' }, value: c('reply_bytes') });
        conns.push({ labels: { vip }, value: c('new_conns') });
        for (const [k, event] of VIP_EVENTS) events.push({ labels: { vip, event }, value: c(k) });
      }
      for (const [id, b] of state.backends) {
        const vip = names.get(b.vipId);
        if (vip === undefined) continue; // an entry of no VIP, left by a killed apply
        const backend = `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}`;
        bePackets.push({ labels: { vip, backend, direction: 'in' }, value: rows.get(id, 'packets') }, { labels: { vip, backend, direction: 'reply' }, value: rows.get(id, 'reply_packets') });
        beBytes.push({ labels: { vip, backend, direction: 'in' }, value: rows.get(id, 'bytes') }, { labels: { vip, backend, direction: 'reply' }, value: rows.get(id, 'reply_bytes') });
        beConns.push({ labels: { vip, backend }, value: rows.get(id, 'new_conns') });
        weight.push({ labels: { vip, backend, state: b.removed ? 'removed' : 'active' }, value: b.removed ? 0 : b.weight });
      }
      return [
        family(F.vipPackets, packets),
        family(F.vipBytes, bytes),
        family(F.vipConns, conns),
        family(F.vipEvents, events),
        family(F.bePackets, bePackets),
        family(F.beBytes, beBytes),
        family(F.beConns, beConns),
        family(F.weight, weight),
        family(F.conns, [{ value: fill.connections }]),
        family(F.connsMax, [{ value: fill.connections_max }]),
        family(F.natPorts, [{ value: fill.nat_ports }]),
        family(F.natPortsMax, [{ value: fill.nat_ports_max }]),
        family(F.attached, Object.keys(lbInterfaces()).map((i) => ({ labels: { interface: i }, value: 1 }))),
      ];
    },
  };
}
