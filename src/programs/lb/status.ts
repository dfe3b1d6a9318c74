// What the balancer is doing, read back from the kernel: where it runs, its
// NAT settings, how full its tables are, and every VIP and backend with
// their counters (per-CPU values summed); and what `xdp-lb run` published of
// what the kernel does not know (health, announcements; runtime.ts), marked
// stale when its writer is gone.
import { possibleCpus, type BpfMap } from '../../libbpf/index.js';
import { XdplbError } from '../../errors.js';
import { resolveIface } from '../../root/pins.js';
import { lbInterfaces, openLbMaps, closeLbMaps } from './pins.js';
import { readState, type LbMaps } from './state.js';
import {
  COUNTER_NAMES, LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, decodeVipFwd, decodeVipKey, type Forwarding, type LbCounters,
  type NatConfig, type Timeouts, type VipForwarding,
} from './layout.js';
import { chainedEntries } from './chain.js';
import { vipName } from './config.js';
import { backendName, type Health } from './health.js';
import { readRuntime, type BgpRuntime, type LbRuntime } from './runtime.js';

export interface BackendStatus {
  id: number;
  address: string;
  port: number;
  weight: number;
  mac?: string;
  /** Out of the table, still serving its established flows. */
  removed: boolean;
  counters: LbCounters;
  /** As the service last published (null without one, or for a backend it does not run). */
  health?: Health | null;
  since?: string | null;
  last_error?: string | null;
}

/** A stateless VIP's chaining: its change counter, its window, how many
 *  of its table's entries name a previous backend now, and how many
 *  entries its last change left without a previous backend still inside
 *  its window (one previous backend per entry: `lost`, changed again;
 *  `evicted`, its change more than CHAIN_GENS changes back). */
export interface ChainStatus {
  generation: number;
  chain_window_s: number;
  chained: number;
  lost: number;
  evicted: number;
}

export interface VipStatus extends Omit<VipForwarding, 'forwarding' | 'stateless' | 'chain_window_s'> {
  id: number;
  address: string;
  port: number;
  protocol: string;
  /** How its packets reach the backends; ipip and gue with their outer
   *  sources, gue with its port. */
  forwarding: Forwarding;
  table_size: number;
  /** Present for a stateless VIP only. */
  stateless?: ChainStatus;
  counters: LbCounters;
  backends: BackendStatus[];
  /** As the service last published (null without one): backends taking new
   *  flows, whether its address is announced (null: no `bgp`), and why. */
  healthy?: number | null;
  announced?: boolean | null;
  announcement?: string | null;
}

/** The service that publishes health and announcements: null when none
 *  has (or it stopped); `running` false when it is gone and this is stale. */
export interface ServiceStatus {
  pid: number;
  running: boolean;
  started: string;
  updated: string;
  attached: boolean | null;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Every row of a counters map (lb_vip_stats, lb_be_stats) from one batch
 *  read, each counter summed over CPUs when asked for: `value(id, name)`
 *  one counter, `row(id)` all. Summed as two 32-bit halves in float64s
 *  (exact for any number of CPUs), not as bigints: 10,000 backends' rows
 *  are 150,000 words per CPU, and a bigint sum made every scrape slow. */
export class CounterRows {
  private constructor(
    private readonly words: Uint32Array,
    private readonly cpus: number,
    /** 32-bit words from one CPU's value to the next. */
    private readonly stride: number,
  ) {}

  static read(map: BpfMap, count: number): CounterRows {
    const cpus = map.perCpu ? possibleCpus() : 1;
    const stride = Math.ceil(map.valueSize / 8) * 2;
    const raw = map.values(count);
    const words = raw.byteOffset % 4 ? new Uint32Array(new Uint8Array(raw).buffer) : new Uint32Array(raw.buffer, raw.byteOffset, raw.length / 4);
    return new CounterRows(words, cpus, stride);
  }

  /** A counter summed over CPUs (wrapping at 2^64 as a u64 does): a
   *  number where it is exact, a bigint past 2^53 - 1. */
  value(id: number, name: keyof LbCounters): number | bigint {
    let at = id * this.cpus * this.stride + LAYOUT.lb_counters[name] / 4;
    let lo = 0;
    let hi = 0;
    for (let cpu = 0; cpu < this.cpus; cpu++, at += this.stride) {
      lo += this.words[at];
      hi += this.words[at + 1];
    }
    const sum = hi * 2 ** 32 + lo;
    if (sum <= Number.MAX_SAFE_INTEGER) return sum;
    const wrapped = BigInt.asUintN(64, (BigInt(hi) << 32n) + BigInt(lo));
    return wrapped <= MAX_SAFE ? Number(wrapped) : wrapped;
  }

  get(id: number, name: keyof LbCounters): bigint {
    return BigInt(this.value(id, name));
  }

  row(id: number): LbCounters {
    return Object.fromEntries(COUNTER_NAMES.map((n) => [n, this.get(id, n)])) as LbCounters;
  }
}

// A stateless VIP's window is shown with its chaining (ChainStatus).
function forwarding(raw: Buffer, id: number): Pick<VipStatus, 'forwarding' | 'encap_source_ipv4' | 'encap_source_ipv6' | 'gue_port'> {
  const { stateless: _s, chain_window_s: _w, ...f } = decodeVipFwd(raw, id * LAYOUT.lb_vip_fwd.size);
  return { ...f, forwarding: f.forwarding ?? 'nat' };
}

export function vipStatus(maps: LbMaps, state = readState(maps)): VipStatus[] {
  const vipRows = CounterRows.read(maps.lb_vip_stats, LB_MAX_VIPS);
  const backendRows = CounterRows.read(maps.lb_be_stats, LB_MAX_BACKENDS);
  const byVip = new Map<number, BackendStatus[]>();
  for (const [id, b] of state.backends) {
    const list = byVip.get(b.vipId) ?? [];
    if (!list.length) byVip.set(b.vipId, list);
    list.push({
      id, address: b.address, port: b.port, weight: b.weight, ...(b.mac ? { mac: b.mac } : {}),
      removed: b.removed, counters: backendRows.row(id),
    });
  }
  return [...state.vips.values()]
    .sort((a, b) => a.id - b.id)
    .map((v) => ({
      id: v.id,
      ...decodeVipKey(v.key),
      ...forwarding(state.forwardingRaw, v.id),
      table_size: v.tableSize,
      ...(state.slots.has(v.id) ? {
        stateless: {
          generation: state.chains.get(v.id)?.gen ?? 0,
          chain_window_s: state.forwardingRaw.readUInt32LE(v.id * LAYOUT.lb_vip_fwd.size + LAYOUT.lb_vip_fwd.chain_window_s),
          chained: chainedEntries(state.slots.get(v.id)!).entries,
          lost: state.chains.get(v.id)?.lost ?? 0,
          evicted: state.chains.get(v.id)?.evicted ?? 0,
        },
      } : {}),
      counters: vipRows.row(v.id),
      backends: byVip.get(v.id) ?? [],
    }));
}

/** How full the connection and NAT tables are: entries walked, of capacity. */
export function tableFill(maps: LbMaps): { connections: number; connections_max: number; nat_ports: number; nat_ports_max: number } {
  return {
    connections: maps.lb_conns.count(),
    connections_max: maps.lb_conns.maxEntries,
    nat_ports: maps.lb_nat.count(),
    nat_ports_max: maps.lb_nat.maxEntries,
  };
}

export type LbStatus =
  | { loaded: false; interfaces: Record<string, never> }
  | {
      loaded: true;
      /** Where it runs; none: the state is pinned but attached nowhere
       *  (an orphan, kept for the next attach; --purge removes it). */
      interfaces: Record<string, { slot: number; id: number }>;
      orphan: boolean;
      nat: NatConfig;
      timeouts: Timeouts;
      connections: number;
      connections_max: number;
      nat_ports: number;
      nat_ports_max: number;
      vips: VipStatus[];
      service: ServiceStatus | null;
      bgp: BgpRuntime | null;
    };

/** The VIPs with what the service published of them. */
function withRuntime(vips: VipStatus[], rt: LbRuntime | null): VipStatus[] {
  return vips.map((v) => {
    const r = rt?.vips[vipName(v)];
    return {
      ...v,
      healthy: r?.healthy ?? null,
      announced: r?.announced ?? null,
      announcement: r?.announcement ?? null,
      backends: v.backends.map((b) => {
        const h = b.removed ? undefined : r?.backends[backendName(b)];
        return { ...b, health: h?.health ?? null, since: h?.since ?? null, last_error: h?.last_error ?? null };
      }),
    };
  });
}

/** The namespace's balancer; with `ifnames`, each must exist here and run
 *  the balancer. */
export function lbStatus(ifnames?: string[]): LbStatus {
  const all = lbInterfaces();
  for (const name of ifnames ?? []) {
    resolveIface(name);
    if (!all[name]) throw new XdplbError(`xdp-lb is not attached to ${name}: run xdp-lb --attach --interface ${name} first`);
  }
  const maps = openLbMaps();
  if (!maps) return { loaded: false, interfaces: {} };
  try {
    const state = readState(maps);
    const rt = readRuntime();
    return {
      loaded: true,
      interfaces: ifnames ? Object.fromEntries(ifnames.map((n) => [n, all[n]])) : all,
      orphan: !Object.keys(all).length,
      nat: state.config.nat,
      timeouts: state.config.timeouts,
      ...tableFill(maps),
      vips: withRuntime(vipStatus(maps, state), rt),
      service: rt && { pid: rt.pid, running: rt.running, started: rt.started, updated: rt.updated, attached: rt.attached },
      bgp: rt?.bgp ?? null,
    };
  } finally {
    closeLbMaps(maps);
  }
}
