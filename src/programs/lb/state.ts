// The load balancer's state, read back whole from the kernel's maps (the
// kernel is the source of truth; there is no state file): a plain value the
// planner (plan.ts) compares with a config. Reading is split from decoding
// so that the planner's tests can build states without a kernel.
import { BpfMap, possibleCpus } from '../../libbpf/index.js';
import { VIP_BITS_WORDS } from './vipbits.js';
import {
  LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, decodeBackend, decodeConfig, decodeVip, decodeVipFwd, decodeVipKey, isStateless,
  type BackendEntry,
} from './layout.js';
import { decodeChain, type ChainRecord } from './chain.js';
import { DEFAULT_NAT, DEFAULT_TIMEOUTS, vipName, type LbConfig, type VipConfig } from './config.js';
import type { LbMapName } from './spec.js';

export type LbMaps = Record<LbMapName, BpfMap>;

/** A VIP as lb_vips holds it. */
export interface HeldVip {
  id: number;
  tableSize: number;
  /** Its lb_vips key, encoded. */
  key: Buffer;
}

/** What the kernel's maps hold, as read: no decoding beyond keys. */
export interface RawState {
  /** lb_config's one entry. */
  config: Buffer | null;
  /** lb_vips: [key, value] for every VIP. */
  vips: Array<[Buffer, Buffer]>;
  /** lb_backends, the whole array. */
  backends: Buffer;
  /** VIP id -> the name of the table lb_maglev holds at that id. */
  tables: Map<number, string>;
  /** lb_vip_ids and lb_vip_bits, whole. */
  vipIds: Buffer;
  vipBits: Buffer;
  /** lb_vip_fwd, whole: each VIP's forwarding, by id. */
  forwarding: Buffer;
  /** lb_vip_index, whole. */
  vipIndex: Buffer;
  /** The table of every id whose forwarding says stateless (struct
   *  lb_slot entries). */
  slots: Map<number, Buffer>;
}

export interface LbState {
  /** The config the kernel holds, built on first use: applying a whole
   *  file never needs it (10,000 backends take a millisecond). */
  readonly config: LbConfig;
  /** VIP key (vipName) -> id and table size. */
  vips: Map<string, HeldVip>;
  /** Backend id -> entry, for every slot in use (removed ones included). */
  backends: Map<number, BackendEntry>;
  /** lb_config as the kernel holds it, null before the first apply. */
  configRaw: Buffer | null;
  /** VIP id -> the name of its table in lb_maglev, which says what the
   *  table was built from (plan.ts tableName); every id with a table, a
   *  VIP's or not. */
  tables: Map<number, string>;
  /** lb_vip_ids and lb_vip_bits, whole. */
  vipIdsRaw: Buffer;
  vipBitsRaw: Buffer;
  /** lb_vip_fwd, whole. */
  forwardingRaw: Buffer;
  /** lb_vip_index, whole. */
  vipIndexRaw: Buffer;
  /** Stateless VIPs (by id): their table's entries and their chaining
   *  record (in lb_vip_fwd). */
  slots: Map<number, Buffer>;
  chains: Map<number, ChainRecord>;
}

function readRaw(maps: LbMaps): RawState {
  const tables = new Map<number, string>();
  // One batch call for the whole array of tables; each table's name comes
  // from its own map info.
  const slots = new Map<number, Buffer>();
  const forwarding = maps.lb_vip_fwd.values(LB_MAX_VIPS);
  for (const [key, value] of maps.lb_maglev.entries(LB_MAX_VIPS)) {
    const table = BpfMap.byId(value.readUInt32LE(0));
    if (!table) continue; // swapped out since
    const id = key.readUInt32LE(0);
    tables.set(id, table.name);
    // A stateless VIP's next table is computed from this one.
    if (isStateless(forwarding, id * LAYOUT.lb_vip_fwd.size)) slots.set(id, table.readMapped());
    table.close();
  }
  return {
    config: maps.lb_config.lookup(0),
    // One batch call for every VIP, not a key walk and a lookup per VIP.
    vips: maps.lb_vips.entries(LB_MAX_VIPS),
    backends: maps.lb_backends.readMapped(LB_MAX_BACKENDS),
    tables,
    vipIds: maps.lb_vip_ids.values(LB_MAX_VIPS),
    vipBits: maps.lb_vip_bits.values(VIP_BITS_WORDS),
    forwarding,
    vipIndex: maps.lb_vip_index.readMapped(),
    slots,
  };
}

/** The state in `raw` (pure). */
export function decodeState(raw: RawState): LbState {
  const vips = new Map<string, HeldVip>();
  for (const [key, v] of raw.vips) {
    const { id, tableSize } = decodeVip(v);
    vips.set(vipName(decodeVipKey(key)), { id, tableSize, key });
  }
  const backends = new Map<number, BackendEntry>();
  for (let id = 0; id < LB_MAX_BACKENDS; id++) {
    const e = decodeBackend(raw.backends, id * LAYOUT.lb_backend.size);
    if (e) backends.set(id, e);
  }
  const chains = new Map<number, ChainRecord>();
  for (const id of raw.slots.keys()) chains.set(id, decodeChain(raw.forwarding, id * LAYOUT.lb_vip_fwd.size));
  let config: LbConfig | undefined;
  return {
    get config() {
      return (config ??= heldConfig(raw.config, vips, backends, raw.forwarding));
    },
    vips,
    backends,
    configRaw: raw.config,
    tables: raw.tables,
    vipIdsRaw: raw.vipIds,
    vipBitsRaw: raw.vipBits,
    forwardingRaw: raw.forwarding,
    vipIndexRaw: raw.vipIndex,
    slots: raw.slots,
    chains,
  };
}

export function readState(maps: LbMaps): LbState {
  return decodeState(readRaw(maps));
}

/** The kernel's config in validateConfig's form: each VIP's live backends, in id order. */
function heldConfig(raw: Buffer | null, vips: LbState['vips'], backends: LbState['backends'], fwd: Buffer): LbConfig {
  const cfg = raw ? decodeConfig(raw) : null;
  const live = new Map<number, VipConfig['backends']>();
  for (const b of backends.values()) {
    if (b.removed) continue;
    if (!live.has(b.vipId)) live.set(b.vipId, []);
    live.get(b.vipId)!.push({ address: b.address, port: b.port, weight: b.weight, ...(b.mac ? { mac: b.mac } : {}) });
  }
  const list: VipConfig[] = [...vips.values()]
    .sort((a, b) => a.id - b.id)
    .map((v) => ({
      ...decodeVipKey(v.key), table_size: v.tableSize, backends: live.get(v.id) ?? [],
      ...decodeVipFwd(fwd, v.id * LAYOUT.lb_vip_fwd.size),
    }));
  return { nat: cfg?.nat ?? { ...DEFAULT_NAT }, timeouts: cfg?.timeouts ?? { ...DEFAULT_TIMEOUTS }, vips: list };
}

/**
 * Backend ids that some flow may still use: those in an entry of the
 * connection table, the NAT table or the fragment table, live or expired
 * (an expired entry is gone only once the data plane or the LRU replaces
 * it). A per-CPU table's value counts on every CPU that has seen the flow
 * (a CPU that has not holds zeros, last_seen 0). One walk of each table, in
 * batches: about 200 ms for full connection and NAT tables (262,144 entries
 * each), so it is made only when an apply needs the ids of removed backends.
 */
export function flowBackends(maps: LbMaps): Set<number> {
  const ids = new Set<number>();
  const scan = (map: BpfMap, backendAt: number, seenAt?: number) => {
    const stride = map.perCpu ? Math.ceil(map.valueSize / 8) * 8 : map.valueSize;
    const cpus = map.perCpu ? possibleCpus() : 1;
    map.forEachValue((values, at) => {
      for (let cpu = 0; cpu < cpus; cpu++, at += stride) {
        if (map.perCpu && seenAt !== undefined && values.readBigUInt64LE(at + seenAt) === 0n) continue;
        ids.add(values.readUInt32LE(at + backendAt));
      }
    });
  };
  scan(maps.lb_conns, LAYOUT.lb_conn.backend, LAYOUT.lb_conn.last_seen);
  scan(maps.lb_nat, LAYOUT.lb_nat.backend);
  scan(maps.lb_frags, LAYOUT.lb_frag.backend);
  return ids;
}
