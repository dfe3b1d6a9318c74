// The load balancer's state in the kernel: read back whole from its maps (the
// kernel is the source of truth) and changed by applying a config, writing
// only the difference. A Maglev table is never written in place: a new inner
// map is filled and swapped in by one update of lb_maglev.
import {
  MAP_F_INNER_MAP, MAP_F_MMAPABLE, MAP_TYPE_ARRAY, arrayWriteMapped, closeFd, mapCreate, mapDelete, mapEntries, mapLookup,
  mapLookupPerCpu, mapUpdate, mapUpdateBatch, mapCount, possibleCpus, mapInfo, mapFdById, arrayValues, arrayReadMapped,
} from '../../libbpf/index.js';
import { XdplbError } from '../../errors.js';
import { maglevTable } from './maglev.js';
import { kernelHz } from './clock.js';
import { VIP_BITS_WORDS, vipBits } from './vipbits.js';
import {
  LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, decodeBackend, decodeConfig, decodeCounters, decodeVip, decodeVipFwd, decodeVipKey,
  encodeBackend, encodeConfig, encodeVip, encodeVipFwd, encodeVipKey, u32, type BackendEntry, type LbCounters,
} from './layout.js';
import { DEFAULT_NAT, DEFAULT_TIMEOUTS, vipName, type BackendConfig, type LbConfig, type VipConfig } from './config.js';
import type { LbMapName } from './spec.js';

export type LbFds = Record<LbMapName, number>;

export interface LbState {
  /** The config the kernel holds, built on first use: applying a whole
   *  file never needs it (10,000 backends take a millisecond). */
  readonly config: LbConfig;
  /** VIP key (vipName) -> id and table size. */
  vips: Map<string, { id: number; tableSize: number; key: Buffer }>;
  /** Backend id -> entry, for every slot in use (removed ones included). */
  backends: Map<number, BackendEntry>;
  /** lb_config as the kernel holds it, null before the first apply. */
  configRaw: Buffer | null;
  /** lb_vip_fwd, the whole array: each VIP's forwarding, by id. */
  forwardingRaw: Buffer;
}

const ZERO = u32(0);
/** As struct lb_table's in lb_maps.h: the outer map takes only inner maps
 *  with the template's flags. */
const TABLE_FLAGS = MAP_F_INNER_MAP | MAP_F_MMAPABLE;

export function readState(fds: LbFds): LbState {
  const cfgRaw = mapLookup(fds.lb_config, ZERO, LAYOUT.lb_config.size);
  const vips = new Map<string, { id: number; tableSize: number; key: Buffer }>();
  // One batch call for every VIP, not a key walk and a lookup per VIP.
  for (const [key, v] of mapEntries(fds.lb_vips, LAYOUT.lb_vip_key.size, LAYOUT.lb_vip.size, LB_MAX_VIPS)) {
    const { id, tableSize } = decodeVip(v);
    vips.set(vipName(decodeVipKey(key)), { id, tableSize, key });
  }
  const backends = new Map<number, BackendEntry>();
  const raw = arrayReadMapped(fds.lb_backends, LAYOUT.lb_backend.size, LB_MAX_BACKENDS);
  for (let id = 0; id < LB_MAX_BACKENDS; id++) {
    const e = decodeBackend(raw, id * LAYOUT.lb_backend.size);
    if (e) backends.set(id, e);
  }
  const forwardingRaw = arrayValues(fds.lb_vip_fwd, LAYOUT.lb_vip_fwd.size, LB_MAX_VIPS);
  let config: LbConfig | undefined;
  return {
    get config() {
      return (config ??= heldConfig(cfgRaw, vips, backends, forwardingRaw));
    },
    vips,
    backends,
    configRaw: cfgRaw,
    forwardingRaw,
  };
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

/** One write the apply made, and how to undo it. */
interface Undo {
  fd: number;
  key: Buffer;
  old: Buffer | null;
}

export interface ApplyResult {
  vips_added: number;
  vips_removed: number;
  vips_changed: number;
  tables_written: number;
  backends_written: number;
}

/**
 * Make the kernel hold `want`, writing only what differs. Order matters for
 * packets in flight: backends first, then each changed VIP's new table (one
 * swap), then the VIP entries, and removals last. A kernel error part way
 * undoes the writes made so far.
 */
export function applyConfig(fds: LbFds, want: LbConfig, have: LbState = readState(fds)): ApplyResult {
  const result: ApplyResult = { vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: 0, backends_written: 0 };

  // Plan ids before writing anything, so running out of room changes nothing.
  const wanted = new Set(want.vips.map(vipName));
  const freedVipIds = new Set([...have.vips.entries()].filter(([n]) => !wanted.has(n)).map(([, v]) => v.id));
  // Each VIP's backends, removed ones included, in id order.
  const byVip = new Map<number, Held>();
  for (const [id, b] of have.backends) {
    const held = byVip.get(b.vipId);
    if (held) {
      held.ids.push(id);
      held.entries.push(b);
    } else {
      byVip.set(b.vipId, { ids: [id], entries: [b] });
    }
  }
  const usedVipIds = new Set([...have.vips.values()].map((v) => v.id));
  const nextFree = (used: (i: number) => boolean, max: number) => {
    let i = 0;
    return () => {
      while (i < max && used(i)) i++;
      return i < max ? i++ : undefined;
    };
  };
  const freeVip = nextFree((i) => usedVipIds.has(i), LB_MAX_VIPS);
  const freeBackend = nextFree((i) => have.backends.has(i), LB_MAX_BACKENDS);
  /** Backend entries to write: wanted ones the kernel does not hold yet, and new tombstones. */
  const changed: Array<{ id: number; entry: BackendEntry }> = [];
  const plan = want.vips.map((v) => {
    const current = have.vips.get(vipName(v));
    const id = current?.id ?? freeVip();
    if (id === undefined) throw new XdplbError(`no room for VIP ${vipName(v)}: at most ${LB_MAX_VIPS} VIPs`);
    const had = (current && byVip.get(id)) || { ids: [], entries: [] };
    const { at, unmatched } = matchBackends(v.backends, had.entries);
    // The table is a function of its size and of each backend's id, identity
    // and weight (maglev.ts is deterministic): when none of these changed,
    // the table in place is the one we would build, and is left alone.
    let sameTable = !!current && current.tableSize === v.table_size;
    const ids = v.backends.map((b, i) => {
      const k = at[i];
      const bid = k === undefined ? freeBackend() : had.ids[k];
      if (bid === undefined) {
        throw new XdplbError(`no room for backend ${b.address} port ${b.port} of VIP ${vipName(v)}: at most ${LB_MAX_BACKENDS} backends, removed ones included`);
      }
      const old = k === undefined ? undefined : had.entries[k];
      sameTable &&= !!old && !old.removed && old.weight === b.weight;
      if (!holds(old, id, b)) changed.push({ id: bid, entry: { address: b.address, port: b.port, vipId: id, weight: b.weight, mac: b.mac, removed: false } });
      return bid;
    });
    // Backends dropped from a kept VIP stay as tombstones: established flows
    // still reach them; new flows do not (they are out of the table).
    for (const k of unmatched) {
      const old = had.entries[k];
      if (old.removed) continue;
      sameTable = false;
      changed.push({ id: had.ids[k], entry: { ...old, removed: true } });
    }
    return { vip: v, id, current, ids, sameTable };
  });

  const undo: Undo[] = [];
  /** Write unless the kernel holds it already; `old` is what readState saw. */
  const write = (fd: number, key: Buffer, value: Buffer, old: Buffer | null) => {
    if (old && old.equals(value)) return;
    mapUpdate(fd, key, value);
    undo.push({ fd, key, old });
  };
  const remove = (fd: number, key: Buffer, size: number) => {
    const old = mapLookup(fd, key, size);
    if (!old) return;
    mapDelete(fd, key);
    undo.push({ fd, key, old });
  };
  /** Write the entries of an array map where `next` differs from `prev`
   *  (both the whole array), in one batch. */
  const writeChanged = (fd: number, prev: Buffer, next: Buffer, size: number) => {
    const ids: number[] = [];
    for (let i = 0; i * size < next.length; i++) {
      const a = prev.subarray(i * size, (i + 1) * size);
      if (a.equals(next.subarray(i * size, (i + 1) * size))) continue;
      ids.push(i);
      undo.push({ fd, key: u32(i), old: Buffer.from(a) });
    }
    writeArray(fd, ids, ids.map((i) => next.subarray(i * size, (i + 1) * size)));
  };
  const swapped: Array<{ key: Buffer; oldFd: number | null }> = [];
  const built: Array<{ id: number; fd: number }> = [];
  try {
    write(fds.lb_config, ZERO, encodeConfig(want.nat, want.timeouts, kernelHz()), have.configRaw);
    // Changed backend entries in one batch, and zeroed counters for new ids
    // and new VIPs.
    const fresh = changed.filter((b) => !have.backends.has(b.id)).map((b) => b.id);
    for (const b of changed) {
      const old = have.backends.get(b.id);
      undo.push({ fd: fds.lb_backends, key: u32(b.id), old: old ? encodeBackend(old) : Buffer.alloc(LAYOUT.lb_backend.size) });
    }
    writeArray(fds.lb_backends, changed.map((b) => b.id), changed.map((b) => encodeBackend(b.entry)));
    writeArray(fds.lb_be_stats, fresh, fresh.map(() => Buffer.alloc(countersSize())));
    result.backends_written = changed.length;
    const newVips = plan.filter((p) => !p.current).map((p) => p.id);
    writeArray(fds.lb_vip_stats, newVips, newVips.map(() => Buffer.alloc(countersSize())));
    for (const p of plan) {
      if (p.sameTable) continue;
      const key = u32(p.id);
      // A VIP's entry holds its table size; packets index with the size they
      // read. Growing, the old size fits the new table: swap, then resize.
      // Shrinking, resize first so that no index runs past the new table.
      if (p.current && p.vip.table_size < p.current.tableSize) {
        write(fds.lb_vips, p.current.key, encodeVip(p.id, p.vip.table_size), encodeVip(p.id, p.current.tableSize));
      }
      swapped.push({ key, oldFd: innerFd(fds.lb_maglev, key) });
      const table = maglevTable(p.vip.backends.map((b, i) => ({ id: p.ids[i], key: `${b.address}:${b.port}`, weight: b.weight })), p.vip.table_size);
      built.push({ id: p.id, fd: buildTable(table) });
      result.tables_written++;
      if (p.current) result.vips_changed++;
    }
    // Every new table in one batch update of the outer map: the kernel waits
    // for running programs to let go of the old tables (an RCU grace period)
    // once per update call, not once per table.
    writeArray(fds.lb_maglev, built.map((t) => t.id), built.map((t) => u32(t.fd)));
    // Each VIP's forwarding, before a new VIP can be reached; a removed
    // VIP's is cleared after it is gone.
    const F = LAYOUT.lb_vip_fwd.size;
    const fwdDuring = Buffer.from(have.forwardingRaw);
    for (const p of plan) {
      const entry = encodeVipFwd(p.vip);
      // A VIP whose table changed is counted already.
      if (p.current && p.sameTable && !entry.equals(have.forwardingRaw.subarray(p.id * F, (p.id + 1) * F))) result.vips_changed++;
      entry.copy(fwdDuring, p.id * F);
    }
    writeChanged(fds.lb_vip_fwd, have.forwardingRaw, fwdDuring, F);
    // A new VIP's id and bit go in before its lb_vips entry, a removed one's
    // come out after it: the bits stay a superset of the VIPs throughout.
    const ids = arrayValues(fds.lb_vip_ids, LAYOUT.lb_vip_key.size, LB_MAX_VIPS);
    const bits = arrayValues(fds.lb_vip_bits, 8, VIP_BITS_WORDS);
    const idsDuring = Buffer.from(ids);
    for (const p of plan) encodeVipKey(p.vip).copy(idsDuring, p.id * LAYOUT.lb_vip_key.size);
    writeChanged(fds.lb_vip_ids, ids, idsDuring, LAYOUT.lb_vip_key.size);
    const bitsDuring = vipBits([...have.vips.values()].map((v) => v.key).concat(plan.map((p) => encodeVipKey(p.vip))));
    writeChanged(fds.lb_vip_bits, bits, bitsDuring, 8);
    for (const p of plan) {
      // Same size: nothing to write; smaller: written before the swap.
      if (p.current && p.vip.table_size <= p.current.tableSize) continue;
      const old = p.current ? encodeVip(p.current.id, p.current.tableSize) : null;
      write(fds.lb_vips, p.current?.key ?? encodeVipKey(p.vip), encodeVip(p.id, p.vip.table_size), old);
      if (!p.current) result.vips_added++;
    }
    for (const [name, v] of have.vips) {
      if (wanted.has(name)) continue;
      remove(fds.lb_vips, v.key, LAYOUT.lb_vip.size);
      swapped.push({ key: u32(v.id), oldFd: innerFd(fds.lb_maglev, u32(v.id)) });
      mapDelete(fds.lb_maglev, u32(v.id));
      result.vips_removed++;
    }
    for (const vipId of freedVipIds) {
      const held = byVip.get(vipId);
      held?.ids.forEach((id, k) => write(fds.lb_backends, u32(id), Buffer.alloc(LAYOUT.lb_backend.size), encodeBackend(held.entries[k])));
    }
    const idsAfter = Buffer.alloc(idsDuring.length);
    for (const p of plan) encodeVipKey(p.vip).copy(idsAfter, p.id * LAYOUT.lb_vip_key.size);
    writeChanged(fds.lb_vip_ids, idsDuring, idsAfter, LAYOUT.lb_vip_key.size);
    const fwdAfter = Buffer.from(fwdDuring);
    for (const vipId of freedVipIds) fwdAfter.fill(0, vipId * F, (vipId + 1) * F);
    writeChanged(fds.lb_vip_fwd, fwdDuring, fwdAfter, F);
    writeChanged(fds.lb_vip_bits, bitsDuring, vipBits(plan.map((p) => encodeVipKey(p.vip))), 8);
  } catch (err) {
    // Best effort: the error that stopped the apply is the one to report.
    const attempt = (fn: () => unknown) => {
      try {
        fn();
      } catch {
        // keep undoing the rest
      }
    };
    for (const u of undo.reverse()) attempt(() => (u.old ? mapUpdate(u.fd, u.key, u.old) : mapDelete(u.fd, u.key)));
    for (const s of swapped.reverse()) {
      attempt(() => (s.oldFd !== null ? mapUpdate(fds.lb_maglev, s.key, u32(s.oldFd)) : mapDelete(fds.lb_maglev, s.key)));
    }
    throw err;
  } finally {
    for (const s of swapped) closeFd(s.oldFd ?? -1);
    for (const t of built) closeFd(t.fd);
  }
  return result;
}

/** A VIP's backends in the kernel: ids and entries, in id order. */
interface Held {
  ids: number[];
  entries: BackendEntry[];
}

/** Where each wanted backend of a VIP is among the kernel's entries `had`
 *  (by address and port, removed ones included: a backend added back gets
 *  its id back), undefined for a new one; and the places in `had` that no
 *  wanted backend took. */
function matchBackends(want: BackendConfig[], had: BackendEntry[]): { at: Array<number | undefined>; unmatched: number[] } {
  // Ids are handed out in the config's order, so the kernel usually holds
  // a VIP's backends in that order: check position by position first, and
  // build keys only when that fails.
  if (had.length === want.length && want.every((b, i) => had[i].address === b.address && had[i].port === b.port)) {
    return { at: want.map((_, i) => i), unmatched: [] };
  }
  const byKey = new Map(had.map((e, i) => [`${e.address}|${e.port}`, i]));
  const at = want.map((b) => {
    const key = `${b.address}|${b.port}`;
    const i = byKey.get(key);
    byKey.delete(key);
    return i;
  });
  return { at, unmatched: [...byKey.values()] };
}

/** Whether the kernel's entry `old` is already backend `b` of VIP `vipId`. */
function holds(old: BackendEntry | undefined, vipId: number, b: BackendConfig): boolean {
  return !!old && !old.removed && old.vipId === vipId && old.address === b.address && old.port === b.port &&
    old.weight === b.weight && (old.mac ?? '') === (b.mac ?? '');
}

/** One per-CPU counters value, for every CPU (each rounded to 8 bytes). */
const countersSize = () => Math.ceil(LAYOUT.lb_counters.size / 8) * 8 * possibleCpus();

/** Write array entries `ids` in one batch call. */
function writeArray(fd: number, ids: number[], values: Buffer[]): void {
  if (!ids.length) return;
  const keys = Buffer.alloc(ids.length * 4);
  ids.forEach((id, i) => keys.writeUInt32LE(id, i * 4));
  mapUpdateBatch(fd, keys, Buffer.concat(values), ids.length);
}

/** An fd for the table now at `key` of the outer map, null when none. */
function innerFd(outer: number, key: Buffer): number | null {
  const id = mapLookup(outer, key, 4);
  return id ? mapFdById(id.readUInt32LE(0)) : null;
}

/** A new inner map holding `table`, filled through a memory mapping (one
 *  copy, not an update per entry); the caller swaps it in and closes it. */
function buildTable(table: Uint32Array): number {
  const fd = mapCreate(MAP_TYPE_ARRAY, 'lb_table', 4, 4, table.length, TABLE_FLAGS);
  try {
    arrayWriteMapped(fd, Buffer.from(table.buffer, table.byteOffset, table.byteLength), 4, table.length);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return fd;
}

export interface BackendStatus {
  id: number;
  address: string;
  port: number;
  weight: number;
  mac?: string;
  /** Out of the table, still serving its established flows. */
  removed: boolean;
  counters: LbCounters;
}

export interface VipStatus {
  id: number;
  address: string;
  port: number;
  protocol: string;
  table_size: number;
  counters: LbCounters;
  backends: BackendStatus[];
}

function counters(fd: number, id: number): LbCounters {
  return decodeCounters(mapLookupPerCpu(fd, u32(id), LAYOUT.lb_counters.size) ?? []);
}

export function vipStatus(fds: LbFds, state = readState(fds)): VipStatus[] {
  return [...state.vips.values()]
    .sort((a, b) => a.id - b.id)
    .map((v) => ({
      id: v.id,
      ...decodeVipKey(v.key),
      table_size: v.tableSize,
      counters: counters(fds.lb_vip_stats, v.id),
      backends: [...state.backends.entries()]
        .filter(([, b]) => b.vipId === v.id)
        .map(([id, b]) => ({
          id, address: b.address, port: b.port, weight: b.weight, ...(b.mac ? { mac: b.mac } : {}),
          removed: b.removed, counters: counters(fds.lb_be_stats, id),
        })),
    }));
}

/** How full the connection and NAT tables are: entries walked, of capacity. */
export function tableFill(fds: LbFds): { connections: number; connections_max: number; nat_ports: number; nat_ports_max: number } {
  return {
    // Per-CPU values: a batch read copies one per CPU.
    connections: mapCount(fds.lb_conns, LAYOUT.lb_flow.size, Math.ceil(LAYOUT.lb_conn.size / 8) * 8 * possibleCpus()),
    connections_max: mapInfo(fds.lb_conns).maxEntries,
    nat_ports: mapCount(fds.lb_nat, LAYOUT.lb_nat_key.size, LAYOUT.lb_nat.size),
    nat_ports_max: mapInfo(fds.lb_nat).maxEntries,
  };
}
