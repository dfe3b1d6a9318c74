// The load balancer's Prometheus metrics, read at each scrape from what its
// status reads: per VIP and per backend traffic both ways, new connections,
// and on the VIP the drops and lookups that did not go well; the tables'
// fill and the backends' weights. The balancer's state is the network
// namespace's, whatever interface it runs on. From what `xdp-lb run`
// publishes (runtime.ts): each backend's health, each VIP's healthy
// backends and announcement, and whether BIRD answers; only while that
// service runs (xdplb_lb_service_running says whether it does).
import { family, series, type Collector, type FamilySpec, type MetricFamily, type Sample, type Series } from '../contract.js';
import { vipName } from './config.js';
import { decodeVipKey, type LbCounters } from './layout.js';
import { closeLbMaps, lbInterfaces, openLbMaps } from './pins.js';
import { readRuntime } from './runtime.js';
import { readState, type LbState } from './state.js';
import { CounterRows, tableFill } from './status.js';
import { chainedEntries } from './chain.js';

const VIP_EVENTS: Array<[keyof LbCounters, string]> = [
  ['conn_misses', 'conn_miss'], ['no_backend', 'no_backend'], ['nat_exhausted', 'nat_exhausted'],
  ['fib_no_neigh', 'fib_no_neigh'], ['fib_failures', 'fib_failed'], ['icmp_errors', 'icmp_translated'],
  ['bad_checksum', 'bad_checksum'], ['encapsulated', 'encapsulated'], ['too_big', 'too_big'], ['icmp_forwarded', 'icmp_forwarded'],
];

const counter = (name: string, labels: string[], help: string): FamilySpec => ({ name, help, type: 'counter', labels });
const gauge = (name: string, labels: string[], help: string): FamilySpec => ({ name, help, type: 'gauge', labels });
const VIP = ['vip', 'direction'];
const BACKEND = ['vip', 'backend', 'direction'];

export const LB_FAMILIES = {
  vipPackets: counter('xdplb_lb_vip_packets_total', VIP, 'Packets of a VIP\'s flows, toward the backends (in) and back (reply).'),
  vipBytes: counter('xdplb_lb_vip_bytes_total', VIP, 'Bytes of a VIP\'s flows, toward the backends (in) and back (reply).'),
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
  chained: gauge('xdplb_lb_vip_chained_entries', ['vip'], 'Entries of a stateless VIP\'s table that name a previous backend (changed within its chaining window).'),
  generation: gauge('xdplb_lb_vip_generation', ['vip'], 'A stateless VIP\'s change counter: how many times its table changed.'),
  unchained: gauge('xdplb_lb_vip_unchained_entries', ['vip', 'reason'], 'Entries of a stateless VIP\'s table whose previous backend, still inside its window, its last change dropped: changed again (lost; an entry names one previous backend), or its change more than 32 changes back (evicted).'),
  serviceRunning: gauge('xdplb_lb_service_running', [], 'Whether an xdp-lb run service publishes health and announcements here (0: none, or the one that did is gone).'),
  backendUp: gauge('xdplb_lb_backend_up', ['vip', 'backend'], 'A backend\'s health for new flows: 0 when its checks say down, 1 otherwise (up, or not checked yet).'),
  backendHealth: gauge('xdplb_lb_backend_health', ['vip', 'backend', 'state'], 'A backend\'s health check state: 1 for the state it is in (up, down, unchecked), 0 for the others.'),
  vipHealthy: gauge('xdplb_lb_vip_healthy_backends', ['vip'], 'Backends of a VIP taking new flows: weight above 0 and not down.'),
  vipAnnounced: gauge('xdplb_lb_vip_announced', ['vip'], 'Whether BIRD announces the VIP\'s address as far as the service knows (1) or not (0).'),
  birdUp: gauge('xdplb_lb_bird_up', [], 'Whether BIRD answers on its control socket and took the last change (1) or not (0).'),
  bgpSession: gauge('xdplb_lb_bgp_session_up', ['peer'], 'Whether a BGP session named in bgp.peers is established (1) or not (0).'),
} as const;
const F = LB_FAMILIES;
const HEALTH = ['up', 'down', 'unchecked'] as const;

/** A VIP's series and a backend's, made once and kept from one scrape to
 *  the next while their names stay: the writer copies their text. */
interface VipSeries { vip: string; in: Series; reply: Series; conns: Series; events: Series[] }
interface BackendSeries { vip: string; backend: string; in: Series; reply: Series; conns: Series; active: Series; removed: Series }

function vipSeries(vip: string, known: VipSeries | undefined): VipSeries {
  if (known?.vip === vip) return known;
  return {
    vip, in: series(VIP, { vip, direction: 'in' }), reply: series(VIP, { vip, direction: 'reply' }), conns: series(F.vipConns.labels, { vip }),
    events: VIP_EVENTS.map(([, event]) => series(F.vipEvents.labels, { vip, event })),
  };
}

function backendSeries(vip: string, backend: string, known: BackendSeries | undefined): BackendSeries {
  if (known?.vip === vip && known.backend === backend) return known;
  return {
    vip, backend,
    in: series(BACKEND, { vip, backend, direction: 'in' }), reply: series(BACKEND, { vip, backend, direction: 'reply' }),
    conns: series(F.beConns.labels, { vip, backend }),
    active: series(F.weight.labels, { vip, backend, state: 'active' }), removed: series(F.weight.labels, { vip, backend, state: 'removed' }),
  };
}

export function lbCollector(): Collector {
  let vipsKnown = new Map<number, VipSeries>();
  let backendsKnown = new Map<number, BackendSeries>();
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
      // Health and announcements: a few series per backend, made afresh.
      const rt = readRuntime();
      const live = !!rt?.running;
      const up: Sample[] = [];
      const health: Sample[] = [];
      const healthy: Sample[] = [];
      const announced: Sample[] = [];
      const vipsNow = new Map<number, VipSeries>();
      const backendsNow = new Map<number, BackendSeries>();
      // Stateless VIPs only, a few series each: labels, not kept series.
      const chained: Sample[] = [];
      const generation: Sample[] = [];
      const unchained: Sample[] = [];
      for (const v of [...state.vips.values()].sort((a, b) => a.id - b.id)) {
        const l = vipSeries(vipName(decodeVipKey(v.key)), vipsKnown.get(v.id));
        vipsNow.set(v.id, l);
        const c = (name: keyof LbCounters) => vipRows.get(v.id, name);
        packets.push({ series: l.in, value: c('packets') }, { series: l.reply, value: c('reply_packets') });
        bytes.push({ series: l.in, value: c('bytes') }, { series: l.reply, value: c('reply_bytes') });
        conns.push({ series: l.conns, value: c('new_conns') });
        VIP_EVENTS.forEach(([k], i) => events.push({ series: l.events[i], value: c(k) }));
        const slots = state.slots.get(v.id);
        if (slots) {
          chained.push({ labels: { vip: l.vip }, value: chainedEntries(slots).entries });
          const record = state.chains.get(v.id);
          generation.push({ labels: { vip: l.vip }, value: record?.gen ?? 0 });
          unchained.push({ labels: { vip: l.vip, reason: 'lost' }, value: record?.lost ?? 0 }, { labels: { vip: l.vip, reason: 'evicted' }, value: record?.evicted ?? 0 });
        }
        const r = live ? rt!.vips[l.vip] : undefined;
        if (r) healthy.push({ labels: { vip: l.vip }, value: r.healthy });
        if (typeof r?.announced === 'boolean') announced.push({ labels: { vip: l.vip }, value: r.announced ? 1 : 0 });
      }
      for (const [id, b] of state.backends) {
        const vip = vipsNow.get(b.vipId)?.vip;
        if (vip === undefined) continue; // an entry of no VIP, left by a killed apply
        const l = backendSeries(vip, `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}`, backendsKnown.get(id));
        backendsNow.set(id, l);
        bePackets.push({ series: l.in, value: rows.get(id, 'packets') }, { series: l.reply, value: rows.get(id, 'reply_packets') });
        beBytes.push({ series: l.in, value: rows.get(id, 'bytes') }, { series: l.reply, value: rows.get(id, 'reply_bytes') });
        beConns.push({ series: l.conns, value: rows.get(id, 'new_conns') });
        weight.push({ series: b.removed ? l.removed : l.active, value: b.removed ? 0 : b.weight });
        const h = live && !b.removed ? rt!.vips[vip]?.backends[l.backend] : undefined;
        if (h) {
          up.push({ labels: { vip, backend: l.backend }, value: h.health === 'down' ? 0 : 1 });
          for (const state of HEALTH) health.push({ labels: { vip, backend: l.backend, state }, value: h.health === state ? 1 : 0 });
        }
      }
      const bgp = live ? rt!.bgp : null;
      // Only what this scrape saw is kept: removed VIPs and backends go.
      vipsKnown = vipsNow;
      backendsKnown = backendsNow;
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
        family(F.chained, chained),
        family(F.generation, generation),
        family(F.unchained, unchained),
        family(F.serviceRunning, [{ value: live ? 1 : 0 }]),
        family(F.backendUp, up),
        family(F.backendHealth, health),
        family(F.vipHealthy, healthy),
        family(F.vipAnnounced, announced),
        family(F.birdUp, bgp ? [{ value: bgp.reachable && !bgp.error ? 1 : 0 }] : []),
        family(F.bgpSession, bgp ? bgp.sessions.map((p) => ({ labels: { peer: p.name }, value: p.established ? 1 : 0 })) : []),
      ];
    },
  };
}
