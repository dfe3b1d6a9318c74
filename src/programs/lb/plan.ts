// What an apply writes: a pure function of the kernel's state (state.ts)
// and the wanted config, with no kernel access, returning the writes in the
// order apply.ts makes them. Planning comes first and whole, so a config
// that does not fit (no id left for a VIP or a backend) changes nothing.
//
// The order is for packets in flight: a packet sees the maps change one
// write at a time, and at every moment what it finds must lead somewhere
// valid.
//  1. lb_config; zeroed counter rows for ids starting afresh; the
//     chaining records of stateless VIPs whose table changes (in
//     lb_vip_fwd, past what the data plane reads; before the tables, so
//     that no table is of a change its record does not hold).
//  2. Backend entries the new tables point at (new, changed, revived).
//  3. Sizes of VIPs whose table shrinks (the old, larger table still holds
//     every index the new size gives).
//  4. The new tables, swapped in with one update of lb_maglev (the kernel
//     waits for running programs to let go of the old ones).
//  5. Backends dropped from a kept VIP marked removed: no table points at
//     them any more, so no new flow meets a removed backend; established
//     flows still reach them.
//  6. Each wanted VIP's forwarding (lb_vip_fwd), then new VIPs' ids and
//     bits (lb_vip_ids, lb_vip_bits): the bits stay a superset of the VIPs
//     throughout; then the stateless VIPs' index (lb_vip_index, a hint
//     the data plane checks against lb_vip_ids and lb_vip_fwd).
//  7. lb_vips: new VIPs (once their table exists) and grown sizes.
//  8. Removed VIPs out of lb_vips, then their tables out of lb_maglev
//     (and tables no VIP owns, left by an apply that was killed).
//  9. Removed VIPs' backends freed (and entries of no VIP).
// 10. Removed VIPs' ids, bits and forwarding.
import { XdplbError } from '../../errors.js';
import { maglevTable, type MaglevBackend } from './maglev.js';
import { vipBits, vipIndex } from './vipbits.js';
import {
  CHAIN_WINDOW_DEFAULT, FWD_CONFIG_SIZE, LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, encodeBackend, encodeConfig, encodeVip, encodeVipFwd, encodeVipKey,
  type BackendEntry,
} from './layout.js';
import { NO_CHAIN, chainLive, chainTable, chainedGenerations, changedAt, encodeChain, expireTable } from './chain.js';
import { vipName, type BackendConfig, type LbConfig } from './config.js';
import type { LbState } from './state.js';
import type { LbMapName } from './spec.js';

export interface ApplyResult {
  vips_added: number;
  vips_removed: number;
  vips_changed: number;
  tables_written: number;
  backends_written: number;
  /** Stateless VIPs whose change dropped previous backends still inside
   *  their window (present only then): `lost`, entries changed again;
   *  `evicted`, entries of a change CHAIN_GENS changes old. */
  chaining?: ChainLoss[];
}

export interface ChainLoss {
  vip: string;
  lost: number;
  evicted: number;
}

/** A new Maglev table for a VIP: what it is computed from, and its name;
 *  a stateless VIP's entries (struct lb_slot) computed already, from the
 *  table it replaces (chain.ts). */
export interface TableBuild {
  vipId: number;
  size: number;
  backends: MaglevBackend[];
  name: string;
  slots?: Buffer;
}

export type Step =
  /** Entries written in one batch call, keyed by index (arrays) or by
   *  key; `old` is what the kernel held (null: no entry), for the undo. */
  | { kind: 'write'; what: string; map: LbMapName; keys: Array<number | Buffer>; values: Buffer[]; old: Array<Buffer | null> }
  /** Per-CPU counter rows zeroed: ids that start counting afresh. */
  | { kind: 'zero'; what: string; map: 'lb_vip_stats' | 'lb_be_stats'; ids: number[] }
  /** New tables built and swapped into lb_maglev with one update. */
  | { kind: 'tables'; what: string; tables: TableBuild[] }
  /** Entries deleted from lb_vips; `old` for the undo. */
  | { kind: 'delete'; what: string; map: 'lb_vips'; keys: Buffer[]; old: Buffer[] }
  /** Tables taken out of lb_maglev, by VIP id. */
  | { kind: 'untable'; what: string; ids: number[] };

export interface LbPlan {
  /** In the order they must be made; empty when the kernel holds the config. */
  steps: Step[];
  result: ApplyResult;
}

export interface PlanOptions {
  /** The kernel's ticks per second, for lb_config (clock.ts). */
  hz: number;
  /** CLOCK_BOOTTIME ns: when this change is made (lb_chain), and which
   *  previous backends are still inside their window. */
  now?: bigint;
  /** Ids of removed backends that no flow refers to any more
   *  (state.ts flowBackends): when no id is free, new backends take these. */
  reclaimable?: ReadonlySet<number>;
}

/** No id left for a backend; `tombstones` when removed backends hold ids
 *  that flows may have let go of (see PlanOptions.reclaimable). */
export class NoRoomError extends XdplbError {
  constructor(message: string, readonly tombstones: boolean) {
    super(message);
  }
}

/**
 * The name of a table built from `backends` (those of weight 0 take no
 * entries) in a table of `size` entries: a digest of exactly what
 * maglevTable() computes the table from, so that an apply compares the
 * tables the kernel holds, not only the backend entries. A table left stale
 * (an apply killed between writing backends and swapping tables, a table
 * written by hand) has another name and is rebuilt. Order does not matter
 * (the table sorts backends by identity): each backend's hash is summed.
 * 15 characters, the kernel's limit for a map name.
 */
export function tableName(size: number, backends: ReadonlyArray<{ address: string; port: number; weight: number }>, ids: readonly number[]): string {
  // Run for every VIP on every apply (10,000 backends): plain loops, no
  // object or string made per backend.
  let a = 0;
  let b = 0;
  for (let k = 0; k < backends.length; k++) {
    const be = backends[k];
    if (!be.weight) continue;
    // FNV-1a in two lanes over the address's characters, then the port,
    // weight and id as 32-bit words.
    let h1 = 0x811c9dc5;
    let h2 = 0x050c5d1f;
    const s = be.address;
    for (let i = 0; i < s.length; i++) {
      h1 = Math.imul(h1 ^ s.charCodeAt(i), 0x01000193);
      h2 = Math.imul(h2 ^ s.charCodeAt(i), 0x01000193);
    }
    h1 = Math.imul(Math.imul(Math.imul(h1 ^ be.port, 0x01000193) ^ be.weight, 0x01000193) ^ ids[k], 0x01000193);
    h2 = Math.imul(Math.imul(Math.imul(h2 ^ (be.port << 5), 0x01000193) ^ (be.weight << 5), 0x01000193) ^ (ids[k] << 5), 0x01000193);
    a = (a + (h1 ^ (h1 >>> 15))) >>> 0;
    b = (b + (h2 ^ (h2 >>> 13))) >>> 0;
  }
  a = Math.imul(a ^ size, 0x85ebca6b) >>> 0;
  b = Math.imul(b ^ Math.imul(size, 0x9e3779b1), 0xc2b2ae35) >>> 0;
  return `lb_${a.toString(16).padStart(8, '0')}${(b >>> 16).toString(16).padStart(4, '0')}`;
}

/** A VIP's backends in the kernel: ids and entries, in id order. */
interface Held {
  ids: number[];
  entries: BackendEntry[];
}

const EMPTY: Held = { ids: [], entries: [] };
const FREE_BACKEND = Buffer.alloc(LAYOUT.lb_backend.size);

export function planApply(have: LbState, want: LbConfig, opts: PlanOptions): LbPlan {
  const result: ApplyResult = { vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: 0, backends_written: 0 };
  const wanted = new Set(want.vips.map(vipName));
  const removedVips = [...have.vips.entries()].filter(([n]) => !wanted.has(n)).map(([, v]) => v);
  const heldVipIds = new Set([...have.vips.values()].map((v) => v.id));
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

  // VIP ids, and each wanted backend's place among its VIP's entries.
  const freeVip = nextFree((i) => heldVipIds.has(i), LB_MAX_VIPS);
  const vips = want.vips.map((v) => {
    const current = have.vips.get(vipName(v));
    const id = current?.id ?? freeVip();
    if (id === undefined) throw new XdplbError(`no room for VIP ${vipName(v)}: at most ${LB_MAX_VIPS} VIPs`);
    // Entries of an id no VIP holds (an apply killed part way) are not a
    // new VIP's: they are freed below.
    const had = (current && byVip.get(id)) || EMPTY;
    return { vip: v, id, current, had, ...matchBackends(v.backends, had.entries) };
  });

  // Backend ids: a wanted backend keeps the id it has (a removed one is
  // revived); a new one takes the lowest free id, then the lowest id of a
  // removed backend no flow refers to, when allowed.
  const kept = new Set(vips.filter((p) => p.current).map((p) => p.id));
  /** Removed backends of kept VIPs that stay removed, in id order: looked
   *  for only once no id is free. */
  const tombstones = () => {
    const revived = new Set<number>();
    for (const p of vips) for (const k of p.at) if (k !== undefined) revived.add(p.had.ids[k]);
    const out: number[] = [];
    for (const vipId of kept) {
      const held = byVip.get(vipId)!;
      held.ids.forEach((id, k) => held.entries[k].removed && !revived.has(id) && out.push(id));
    }
    return out.sort((x, y) => x - y);
  };
  let reclaim: number[] | undefined;
  let next = 0;
  const freeBackend = nextFree((i) => have.backends.has(i), LB_MAX_BACKENDS);
  const newBackendId = () => freeBackend() ?? (reclaim ??= tombstones().filter((id) => opts.reclaimable?.has(id)))[next++];

  const live: Array<{ id: number; entry: BackendEntry; old: BackendEntry | undefined }> = [];
  const tombs: Array<{ id: number; entry: BackendEntry; old: BackendEntry }> = [];
  const fresh: number[] = [];
  const tables: TableBuild[] = [];
  const F = LAYOUT.lb_vip_fwd.size;
  const fwdEarly = Buffer.from(have.forwardingRaw);
  const chaining: ChainLoss[] = [];
  const now = opts.now ?? 0n;
  const shrink: Array<{ key: Buffer; value: Buffer; old: Buffer }> = [];
  const vipWrites: Array<{ key: Buffer; value: Buffer; old: Buffer | null }> = [];
  for (const p of vips) {
    const { vip: v, id, current, had } = p;
    const ids = v.backends.map((b, i) => {
      const k = p.at[i];
      if (k !== undefined) {
        const old = had.entries[k];
        if (!holds(old, id, b)) live.push({ id: had.ids[k], entry: entryOf(b, id), old });
        return had.ids[k];
      }
      const bid = newBackendId();
      if (bid === undefined) {
        const removed = tombstones().length;
        const busy = opts.reclaimable ? removed - reclaim!.length : 0;
        throw new NoRoomError(
          `no room for backend ${b.address} port ${b.port} of VIP ${vipName(v)}: at most ${LB_MAX_BACKENDS} backends, removed ones included` +
            (busy ? ` (${busy} removed backends still have flows)` : ''),
          removed > 0 && !opts.reclaimable,
        );
      }
      live.push({ id: bid, entry: entryOf(b, id), old: have.backends.get(bid) });
      fresh.push(bid);
      return bid;
    });
    // Backends dropped from a kept VIP stay as tombstones: established flows
    // still reach them; new flows do not (they are out of the table).
    for (const k of p.unmatched) {
      const old = had.entries[k];
      if (!old.removed) tombs.push({ id: had.ids[k], entry: { ...old, removed: true }, old });
    }
    // The table is a function of its size and of each backend's id,
    // identity and weight (maglev.ts is deterministic): when the table in
    // place was built from the same, it is the one we would build.
    const name = tableName(v.table_size, v.backends, ids);
    const record = (current && have.chains.get(id)) || NO_CHAIN;
    if (have.tables.get(id) !== name) {
      const backends = v.backends.map((b, i) => ({ id: ids[i], key: `${b.address}:${b.port}`, weight: b.weight }));
      const build: TableBuild = { vipId: id, size: v.table_size, name, backends };
      if (v.stateless) {
        // The next table is computed from this one: which entries change,
        // which keep the backend they had before.
        const window = v.chain_window_s ?? CHAIN_WINDOW_DEFAULT;
        const old = (current && have.slots.get(id)) || null;
        const c = chainTable(old, maglevTable(backends, v.table_size), record.gen, (g) => chainLive(record, g, window, now));
        build.slots = c.slots;
        const at = [...record.at];
        at[c.gen % at.length] = now;
        encodeChain({ gen: c.gen, lost: c.lost, evicted: c.evicted, at }, fwdEarly, id * F);
        if (c.lost || c.evicted) chaining.push({ vip: vipName(v), lost: c.lost, evicted: c.evicted });
      }
      tables.push(build);
      if (current) result.vips_changed++;
    }
    // A VIP's entry holds its table size; packets index with the size they
    // read. Growing, the old size fits the new table: swap, then resize.
    // Shrinking, resize first so that no index runs past the new table.
    if (current && v.table_size < current.tableSize) {
      shrink.push({ key: current.key, value: encodeVip(id, v.table_size), old: encodeVip(id, current.tableSize) });
    } else if (!current || v.table_size > current.tableSize) {
      vipWrites.push({ key: current?.key ?? encodeVipKey(v), value: encodeVip(id, v.table_size), old: current ? encodeVip(id, current.tableSize) : null });
    }
    if (!current) result.vips_added++;
  }
  result.tables_written = tables.length;
  result.backends_written = live.length + tombs.length;
  result.vips_removed = removedVips.length;
  if (chaining.length) result.chaining = chaining;

  const steps: Step[] = [];
  const write = (what: string, map: LbMapName, keys: Array<number | Buffer>, values: Buffer[], old: Array<Buffer | null>) => {
    if (keys.length) steps.push({ kind: 'write', what, map, keys, values, old });
  };
  const config = encodeConfig(want.nat, want.timeouts, opts.hz);
  if (!have.configRaw?.equals(config)) write('NAT and timeouts', 'lb_config', [0], [config], [have.configRaw ?? Buffer.alloc(config.length)]);
  const newVipIds = vips.filter((p) => !p.current).map((p) => p.id);
  if (newVipIds.length) steps.push({ kind: 'zero', what: 'counters of new VIPs', map: 'lb_vip_stats', ids: newVipIds });
  if (fresh.length) steps.push({ kind: 'zero', what: 'counters of new backends', map: 'lb_be_stats', ids: fresh });
  arrayWrite(write, 'chaining records', 'lb_vip_fwd', have.forwardingRaw, fwdEarly, F);
  const backendWrite = (what: string, list: Array<{ id: number; entry: BackendEntry; old?: BackendEntry }>) =>
    write(what, 'lb_backends', list.map((b) => b.id), list.map((b) => encodeBackend(b.entry)), list.map((b) => (b.old ? encodeBackend(b.old) : FREE_BACKEND)));
  backendWrite('backend entries', live);
  write('sizes of shrinking tables', 'lb_vips', shrink.map((s) => s.key), shrink.map((s) => s.value), shrink.map((s) => s.old));
  if (tables.length) steps.push({ kind: 'tables', what: `${tables.length} Maglev table(s)`, tables });
  backendWrite('removed backends', tombs);

  // A new VIP's id and bit go in before its lb_vips entry, a removed one's
  // come out after it. Both arrays are compared whole, so whatever left
  // them wrong is repaired.
  const K = LAYOUT.lb_vip_key.size;
  const wantedKeys = vips.map((p) => encodeVipKey(p.vip));
  const idsDuring = Buffer.from(have.vipIdsRaw);
  const idsAfter = Buffer.alloc(idsDuring.length);
  vips.forEach((p, i) => {
    wantedKeys[i].copy(idsDuring, p.id * K);
    wantedKeys[i].copy(idsAfter, p.id * K);
  });
  // Forwarding too, compared whole: an id no VIP holds has a zero entry,
  // and so has the chaining record of a VIP that is not stateless.
  const fwdDuring = Buffer.from(fwdEarly);
  const fwdAfter = Buffer.alloc(fwdDuring.length);
  const rebuilt = new Set(tables.map((t) => t.vipId));
  for (const p of vips) {
    const at = p.id * F;
    const entry = encodeVipFwd(p.vip);
    if (p.vip.stateless) fwdEarly.copy(entry, FWD_CONFIG_SIZE, at + FWD_CONFIG_SIZE, at + F);
    // A VIP whose only change is its forwarding is changed all the same.
    if (p.current && !rebuilt.has(p.id) && !entry.subarray(0, FWD_CONFIG_SIZE).equals(fwdEarly.subarray(at, at + FWD_CONFIG_SIZE))) {
      result.vips_changed++;
    }
    entry.copy(fwdDuring, at);
    entry.copy(fwdAfter, at);
  }
  arrayWrite(write, 'VIP forwarding', 'lb_vip_fwd', fwdEarly, fwdDuring, F);
  const bitsDuring = vipBits([...have.vips.values()].map((v) => v.key).concat(wantedKeys));
  const bitsAfter = vipBits(wantedKeys);
  arrayWrite(write, 'VIP ids', 'lb_vip_ids', have.vipIdsRaw, idsDuring, K);
  arrayWrite(write, 'VIP bits', 'lb_vip_bits', have.vipBitsRaw, bitsDuring, 8);
  const index = vipIndex(vips.flatMap((p, i) => (p.vip.stateless ? [{ key: wantedKeys[i], id: p.id }] : [])));
  arrayWrite(write, 'stateless VIP index', 'lb_vip_index', have.vipIndexRaw, index, 4);
  write('VIPs', 'lb_vips', vipWrites.map((w) => w.key), vipWrites.map((w) => w.value), vipWrites.map((w) => w.old));

  if (removedVips.length) {
    steps.push({
      kind: 'delete', what: 'removed VIPs', map: 'lb_vips',
      keys: removedVips.map((v) => v.key), old: removedVips.map((v) => encodeVip(v.id, v.tableSize)),
    });
  }
  const owned = new Set(vips.map((p) => p.id));
  const untable = [...have.tables.keys()].filter((id) => !owned.has(id)).sort((x, y) => x - y);
  if (untable.length) steps.push({ kind: 'untable', what: 'tables of no VIP', ids: untable });
  // Backends of removed VIPs, and entries of an id no VIP holds.
  const freed: Array<[number, BackendEntry]> = [];
  for (const [vipId, held] of byVip) if (!kept.has(vipId)) held.ids.forEach((id, k) => freed.push([id, held.entries[k]]));
  freed.sort(([x], [y]) => x - y);
  write('backends of removed VIPs', 'lb_backends', freed.map(([id]) => id), freed.map(() => FREE_BACKEND), freed.map(([, b]) => encodeBackend(b)));
  arrayWrite(write, 'VIP ids of removed VIPs', 'lb_vip_ids', idsDuring, idsAfter, K);
  arrayWrite(write, 'VIP bits of removed VIPs', 'lb_vip_bits', bitsDuring, bitsAfter, 8);
  arrayWrite(write, 'forwarding of removed VIPs', 'lb_vip_fwd', fwdDuring, fwdAfter, F);
  return { steps, result };
}

/**
 * Chaining that has run its time at `now` (CLOCK_BOOTTIME ns): every
 * stateless VIP's table with the previous backend cleared in the entries
 * of each generation whose window is over (or whose time lb_chain no
 * longer holds), swapped in under the same name (what the table is built
 * from is unchanged), the same entries on every balancer. `next`: when the
 * next generation still chained expires, if one is.
 */
export function planExpiry(have: LbState, now: bigint): { plan: LbPlan; next?: bigint } {
  const tables: TableBuild[] = [];
  let next: bigint | undefined;
  for (const [id, slots] of have.slots) {
    const name = have.tables.get(id);
    if (!name) continue;
    const record = have.chains.get(id) ?? NO_CHAIN;
    const window = BigInt(have.forwardingRaw.readUInt32LE(id * LAYOUT.lb_vip_fwd.size + LAYOUT.lb_vip_fwd.chain_window_s)) * 1_000_000_000n;
    const ends = (g: number) => (changedAt(record, g) ?? -window) + window;
    const out = expireTable(slots, (g) => ends(g) <= now);
    if (out) tables.push({ vipId: id, size: slots.length / LAYOUT.lb_slot.size, name, backends: [], slots: out });
    for (const g of chainedGenerations(out ?? slots)) if (next === undefined || ends(g) < next) next = ends(g);
  }
  const zero = { vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: tables.length, backends_written: 0 };
  const steps: Step[] = tables.length ? [{ kind: 'tables', what: `${tables.length} table(s) whose chaining expired`, tables }] : [];
  return { plan: { steps, result: zero }, next };
}

/** The entries of an array (the whole of it, before and after) that differ. */
function arrayWrite(
  write: (what: string, map: LbMapName, keys: number[], values: Buffer[], old: Buffer[]) => void,
  what: string, map: LbMapName, before: Buffer, after: Buffer, size: number,
): void {
  if (before.equals(after)) return;
  const keys: number[] = [];
  const values: Buffer[] = [];
  const old: Buffer[] = [];
  for (let i = 0; i * size < after.length; i++) {
    const a = before.subarray(i * size, (i + 1) * size);
    const b = after.subarray(i * size, (i + 1) * size);
    if (a.equals(b)) continue;
    keys.push(i);
    values.push(b);
    old.push(a);
  }
  write(what, map, keys, values, old);
}

/** A counter of ids from 0 that skips those `used`; undefined past `max`. */
function nextFree(used: (i: number) => boolean, max: number): () => number | undefined {
  let i = 0;
  return () => {
    while (i < max && used(i)) i++;
    return i < max ? i++ : undefined;
  };
}

const entryOf = (b: BackendConfig, vipId: number): BackendEntry => ({
  address: b.address, port: b.port, vipId, weight: b.weight, mac: b.mac, removed: false,
});

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
