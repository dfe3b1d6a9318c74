// The load balancer's Prometheus metrics, read at each scrape from what its
// status reads: per VIP and per backend traffic both ways, new connections,
// and on the VIP the drops and lookups that did not go well; the tables'
// fill and the backends' weights. The balancer's state is the network
// namespace's, whatever interface it runs on. From what `xdp-lb run`
// publishes (runtime.ts): each backend's health, each VIP's healthy
// backends and announcement, and whether BIRD answers; only while that
// service runs (xdplb_lb_service_running says whether it does).
import { family, series, type Collector, type FamilySpec, type MetricFamily, type Sample, type Series } from '../contract.js';
import { BpfMap } from '../../libbpf/index.js';
import { vipName } from './config.js';
import { BACKEND_FLAGS, LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, decodeBackend, decodeVip, decodeVipKey, isStateless, type LbCounters } from './layout.js';
import { backendName } from './health.js';
import { closeLbMaps, lbInterfaces, openLbMaps } from './pins.js';
import { readRuntime } from './runtime.js';
import type { LbMaps } from './state.js';
import { CounterRows, tableFill } from './status.js';
import { chainedEntries, decodeChain, type ChainRecord } from './chain.js';

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

/** A VIP's series and samples, made once and kept from one scrape to the
 *  next while its id holds the same VIP: a scrape sets their values only
 *  (the writer copies the series' text). */
interface VipSeries {
  vip: string;
  packets: Sample[];
  bytes: Sample[];
  conns: Sample;
  events: Sample[];
}

/** A backend's, kept while its slot holds the same address and port for
 *  the same VIP (`v`, this scrape's VipSeries of its VIP). */
interface BackendSeries {
  v: VipSeries;
  /** Its address, port and family as lb_backends holds them (NAMED). */
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  w4: number;
  backend: string;
  /** Samples as fields, not arrays: each object a scrape touches per
   *  backend is a likely cache miss, 10,000 times. */
  packetsIn: Sample;
  packetsReply: Sample;
  bytesIn: Sample;
  bytesReply: Sample;
  conns: Sample;
  /** Its weight, under state="active" or "removed": one sample each, so
   *  that a sample's series never changes (see MetricFamily). */
  active: Sample;
  removed: Sample;
  isRemoved: boolean;
  /** Made on first use: only while a service publishes health. */
  up?: Series;
  health?: Series[];
}

/** struct lb_backend in 32-bit words: the first five name the backend
 *  (its address; its port and family, and its flags in the top byte of
 *  the fifth, which NAMED leaves out). Compared as words kept in its
 *  BackendSeries: a Buffer per backend, compared byte by byte, cost more
 *  than the rest of its work. */
const WORDS = LAYOUT.lb_backend.size / 4;
const NAMED = 0x00ffffff;
const VIP_ID = LAYOUT.lb_backend.vip_id / 4;
const WEIGHT = LAYOUT.lb_backend.weight / 4;

function vipSeries(vip: string, known: VipSeries | undefined): VipSeries {
  if (known?.vip === vip) return known;
  const sample = (labels: readonly string[], values: Record<string, string>): Sample => ({ series: series(labels, { vip, ...values }), value: 0 });
  return {
    vip,
    packets: [sample(VIP, { direction: 'in' }), sample(VIP, { direction: 'reply' })],
    bytes: [sample(VIP, { direction: 'in' }), sample(VIP, { direction: 'reply' })],
    conns: sample(F.vipConns.labels, {}),
    events: VIP_EVENTS.map(([, event]) => sample(F.vipEvents.labels, { event })),
  };
}

function backendSeries(v: VipSeries, entries: Buffer, words: Int32Array, id: number, known: BackendSeries | undefined): BackendSeries {
  const w = id * WORDS;
  if (known?.v === v && known.w0 === words[w] && known.w1 === words[w + 1] && known.w2 === words[w + 2] && known.w3 === words[w + 3] && known.w4 === (words[w + 4] & NAMED)) return known;
  const backend = backendName(decodeBackend(entries, id * LAYOUT.lb_backend.size)!);
  const vip = v.vip;
  const sample = (labels: readonly string[], values: Record<string, string>): Sample => ({ series: series(labels, { vip, backend, ...values }), value: 0 });
  return {
    v, w0: words[w], w1: words[w + 1], w2: words[w + 2], w3: words[w + 3], w4: words[w + 4] & NAMED, backend,
    packetsIn: sample(BACKEND, { direction: 'in' }), packetsReply: sample(BACKEND, { direction: 'reply' }),
    bytesIn: sample(BACKEND, { direction: 'in' }), bytesReply: sample(BACKEND, { direction: 'reply' }),
    conns: sample(F.beConns.labels, {}), active: sample(F.weight.labels, { state: 'active' }), removed: sample(F.weight.labels, { state: 'removed' }),
    isRemoved: false,
  };
}

function backendColumns(list: BackendSeries[]): Record<'packets' | 'bytes' | 'conns' | 'weight', Sample[]> {
  return {
    packets: list.flatMap((l) => [l.packetsIn, l.packetsReply]),
    bytes: list.flatMap((l) => [l.bytesIn, l.bytesReply]),
    conns: list.map((l) => l.conns),
    weight: list.map((l) => (l.isRemoved ? l.removed : l.active)),
  };
}

/** What a scrape reads of the balancer's maps, one batch read (or one copy
 *  out of its memory) per map: not readState(), which also opens every
 *  VIP's table; here only a stateless VIP's, for its chaining. */
function readMaps(maps: LbMaps) {
  const vips = maps.lb_vips.entries(LB_MAX_VIPS).map(([key, value]) => ({ key, id: decodeVip(value).id })).sort((a, b) => a.id - b.id);
  const backends = maps.lb_backends.readMapped(LB_MAX_BACKENDS);
  let backendsUpTo = 0;
  for (let id = 0; id < LB_MAX_BACKENDS; id++) if (backends[id * LAYOUT.lb_backend.size + LAYOUT.lb_backend.flags] & BACKEND_FLAGS.inUse) backendsUpTo = id + 1;
  const forwarding = maps.lb_vip_fwd.values(LB_MAX_VIPS);
  const stateless = new Map<number, { slots: Buffer; chain: ChainRecord }>();
  for (const { id } of vips) {
    if (!isStateless(forwarding, id * LAYOUT.lb_vip_fwd.size)) continue;
    const held = maps.lb_maglev.lookup(id);
    const table = held && BpfMap.byId(held.readUInt32LE(0));
    if (!table) continue; // swapped out since
    try {
      stateless.set(id, { slots: table.readMapped(), chain: decodeChain(forwarding, id * LAYOUT.lb_vip_fwd.size) });
    } finally {
      table.close();
    }
  }
  return {
    vips, backends, backendsUpTo, stateless,
    // Rows up to the highest id in use, not the whole arrays.
    vipRows: CounterRows.read(maps.lb_vip_stats, vips.length ? vips[vips.length - 1].id + 1 : 0),
    rows: CounterRows.read(maps.lb_be_stats, backendsUpTo),
    fill: tableFill(maps),
  };
}

export function lbCollector(): Collector {
  // By id: arrays, not maps (10,000 backends).
  let vipsKnown: Array<VipSeries | undefined> = [];
  let backendsKnown: Array<BackendSeries | undefined> = [];
  // The backends in id order as the last scrape listed them, and their
  // families' samples: given again while the same backends are listed
  // (values are set in the samples), not 60,000 references pushed anew;
  // the writer then keeps their text too.
  let listed: BackendSeries[] = [];
  let columns = backendColumns(listed);
  return {
    name: 'lb',
    families(): MetricFamily[] {
      const maps = openLbMaps();
      if (!maps) return [];
      let read: ReturnType<typeof readMaps>;
      try {
        read = readMaps(maps);
      } finally {
        closeLbMaps(maps);
      }
      const { vipRows, rows, fill } = read;
      const packets: Sample[] = [];
      const bytes: Sample[] = [];
      const conns: Sample[] = [];
      const events: Sample[] = [];
      // Health and announcements, from what the service publishes.
      const rt = readRuntime();
      const live = !!rt?.running;
      const up: Sample[] = [];
      const health: Sample[] = [];
      const healthy: Sample[] = [];
      const announced: Sample[] = [];
      const vipsNow: Array<VipSeries | undefined> = new Array(LB_MAX_VIPS);
      const backendsNow: Array<BackendSeries | undefined> = new Array(read.backendsUpTo);
      // Stateless VIPs only, a few series each: labels, not kept series.
      const chained: Sample[] = [];
      const generation: Sample[] = [];
      const unchained: Sample[] = [];
      for (const { id, key } of read.vips) {
        const l = vipSeries(vipName(decodeVipKey(key)), vipsKnown[id]);
        vipsNow[id] = l;
        l.packets[0].value = vipRows.value(id, 'packets');
        l.packets[1].value = vipRows.value(id, 'reply_packets');
        l.bytes[0].value = vipRows.value(id, 'bytes');
        l.bytes[1].value = vipRows.value(id, 'reply_bytes');
        l.conns.value = vipRows.value(id, 'new_conns');
        for (let i = 0; i < VIP_EVENTS.length; i++) l.events[i].value = vipRows.value(id, VIP_EVENTS[i][0]);
        packets.push(...l.packets);
        bytes.push(...l.bytes);
        conns.push(l.conns);
        events.push(...l.events);
        const s = read.stateless.get(id);
        if (s) {
          chained.push({ labels: { vip: l.vip }, value: chainedEntries(s.slots).entries });
          generation.push({ labels: { vip: l.vip }, value: s.chain.gen });
          unchained.push({ labels: { vip: l.vip, reason: 'lost' }, value: s.chain.lost }, { labels: { vip: l.vip, reason: 'evicted' }, value: s.chain.evicted });
        }
        const r = live ? rt!.vips[l.vip] : undefined;
        if (r) healthy.push({ labels: { vip: l.vip }, value: r.healthy });
        if (typeof r?.announced === 'boolean') announced.push({ labels: { vip: l.vip }, value: r.announced ? 1 : 0 });
      }
      const B = LAYOUT.lb_backend;
      const entries = read.backends;
      // readMapped's buffer is its own, word aligned.
      const words = new Int32Array(entries.buffer, entries.byteOffset, entries.length / 4);
      let fresh: BackendSeries[] | undefined;
      let n = 0;
      for (let id = 0; id < read.backendsUpTo; id++) {
        const flags = entries[id * B.size + B.flags];
        if (!(flags & BACKEND_FLAGS.inUse)) continue;
        const v = vipsNow[words[id * WORDS + VIP_ID] >>> 0];
        if (!v) continue; // an entry of no VIP, left by a killed apply
        const l = backendSeries(v, entries, words, id, backendsKnown[id]);
        backendsNow[id] = l;
        l.packetsIn.value = rows.value(id, 'packets');
        l.packetsReply.value = rows.value(id, 'reply_packets');
        l.bytesIn.value = rows.value(id, 'bytes');
        l.bytesReply.value = rows.value(id, 'reply_bytes');
        l.conns.value = rows.value(id, 'new_conns');
        const removed = (flags & BACKEND_FLAGS.removed) !== 0;
        if (!removed) l.active.value = words[id * WORDS + WEIGHT] >>> 0;
        if (!fresh && listed[n] === l && l.isRemoved === removed) n++;
        else (fresh ??= listed.slice(0, n)).push(l);
        l.isRemoved = removed;
        const h = live && !removed ? rt!.vips[v.vip]?.backends[l.backend] : undefined;
        if (h) {
          l.up ??= series(F.backendUp.labels, { vip: v.vip, backend: l.backend });
          l.health ??= HEALTH.map((state) => series(F.backendHealth.labels, { vip: v.vip, backend: l.backend, state }));
          up.push({ series: l.up, value: h.health === 'down' ? 0 : 1 });
          HEALTH.forEach((state, i) => health.push({ series: l.health![i], value: h.health === state ? 1 : 0 }));
        }
      }
      if (fresh || n !== listed.length) {
        listed = fresh ?? listed.slice(0, n);
        columns = backendColumns(listed);
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
        family(F.bePackets, columns.packets),
        family(F.beBytes, columns.bytes),
        family(F.beConns, columns.conns),
        family(F.weight, columns.weight),
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
