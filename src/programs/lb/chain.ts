// Chaining: a stateless VIP's table entries name, besides the backend that
// takes their packets (cur), the one that took them before cur last
// changed (prev) and the VIP's change counter at that change (gen). The
// balancer carries prev in the GUE header; the backend's decapsulator sends
// on to it the segments it has no socket for. Every function here is pure:
// the same table, the same Maglev column and the same counter give the
// same bytes on every balancer.
//
// The window is kept by the control plane, never by the data plane: when
// a change's chain_window_s has passed, the service clears the prev of the
// entries of that generation (the same swap as any table change, the same
// entries cleared on every balancer). The VIP's lb_vip_fwd entry keeps,
// past what the data plane reads, the counter and when each of the last
// CHAIN_GENS changes was made.
import { CHAIN_GENS, LAYOUT, SLOT_NONE } from './layout.js';
import { NO_BACKEND } from './maglev.js';

const S = LAYOUT.lb_slot;
const F = LAYOUT.lb_vip_fwd;

/** A VIP's chaining record: its change counter, what its last change
 *  dropped (Chained's lost and evicted), and the times (CLOCK_BOOTTIME ns,
 *  0n: unknown) of changes gen - CHAIN_GENS + 1 .. gen, by gen % CHAIN_GENS. */
export interface ChainRecord {
  gen: number;
  lost: number;
  evicted: number;
  at: bigint[];
}

export const NO_CHAIN: ChainRecord = { gen: 0, lost: 0, evicted: 0, at: Array<bigint>(CHAIN_GENS).fill(0n) };

/** The record in the lb_vip_fwd entry at `at` of `fwd`. */
export function decodeChain(fwd: Buffer, at = 0): ChainRecord {
  return {
    gen: fwd.readUInt32LE(at + F.gen),
    lost: fwd.readUInt32LE(at + F.lost),
    evicted: fwd.readUInt32LE(at + F.evicted),
    at: Array.from({ length: CHAIN_GENS }, (_, i) => fwd.readBigUInt64LE(at + F.changed_at + i * 8)),
  };
}

/** Write the record into the lb_vip_fwd entry at `at` of `fwd`. */
export function encodeChain(r: ChainRecord, fwd: Buffer, at = 0): void {
  fwd.writeUInt32LE(r.gen >>> 0, at + F.gen);
  fwd.writeUInt32LE(r.lost, at + F.lost);
  fwd.writeUInt32LE(r.evicted, at + F.evicted);
  r.at.forEach((t, i) => fwd.writeBigUInt64LE(t, at + F.changed_at + i * 8));
}

/** When change `g` was made, if the record still knows. */
export function changedAt(r: ChainRecord, g: number): bigint | undefined {
  if (g <= 0 || g > r.gen || g <= r.gen - CHAIN_GENS) return undefined;
  const t = r.at[g % CHAIN_GENS];
  return t ? t : undefined;
}

/** Whether generation `g`'s chaining is still inside its window at `now`. */
export function chainLive(r: ChainRecord, g: number, windowS: number, now: bigint): boolean {
  const t = changedAt(r, g);
  return t !== undefined && now - t < BigInt(windowS) * 1_000_000_000n;
}

/** A table of `column` (a Maglev table: backend ids, NO_BACKEND) with no
 *  previous backends: what a VIP that is not stateless holds. */
export function plainTable(column: Uint32Array): Buffer {
  const out = Buffer.alloc(column.length * S.size);
  // 16-bit words in the host's order, the kernel's (a table is built on
  // every change of a VIP: 65537 entries, no call per field).
  const w = new Uint16Array(out.buffer, out.byteOffset, column.length * 4);
  for (let i = 0; i < column.length; i++) {
    w[i * 4] = column[i] === NO_BACKEND ? SLOT_NONE : column[i];
    w[i * 4 + 1] = SLOT_NONE;
  }
  return out;
}

export interface Chained {
  /** The new table, struct lb_slot by struct lb_slot. */
  slots: Buffer;
  /** Its generation: the record's counter after this change. */
  gen: number;
  /** Entries whose previous backend, still inside its window, is lost
   *  because their backend changed again. */
  lost: number;
  /** Entries whose previous backend, still inside its window, is dropped
   *  because its change is more than CHAIN_GENS changes old. */
  evicted: number;
}

/**
 * The table that replaces `old` (struct lb_slot entries; null when the VIP
 * had none, or of another size) when its Maglev column becomes `column`,
 * the VIP's change counter being `gen`. An entry whose backend changes
 * names the backend before (none if there was none) with generation
 * gen + 1; the others keep their previous backend and generation, except
 * that a previous backend of a change CHAIN_GENS or more changes old is
 * dropped (its record no longer knows when it expires). `live(g)` says
 * whether generation g is still inside its window: only for the counts.
 */
export function chainTable(old: Buffer | null, column: Uint32Array, gen: number, live: (g: number) => boolean): Chained {
  const next = gen + 1;
  const oldest = next - CHAIN_GENS + 1; // the oldest change the record keeps after this one
  const out = Buffer.alloc(column.length * S.size);
  const same = old !== null && old.length === out.length;
  let lost = 0;
  let evicted = 0;
  for (let i = 0; i < column.length; i++) {
    const at = i * S.size;
    const cur = column[i] === NO_BACKEND ? SLOT_NONE : column[i];
    out.writeUInt16LE(cur, at + S.cur);
    const was = same ? old!.readUInt16LE(at + S.cur) : SLOT_NONE;
    const prev = same ? old!.readUInt16LE(at + S.prev) : SLOT_NONE;
    const g = same ? old!.readUInt32LE(at + S.gen) : 0;
    if (cur !== was) {
      if (prev !== SLOT_NONE && live(g)) lost++;
      out.writeUInt16LE(was, at + S.prev);
      out.writeUInt32LE(next >>> 0, at + S.gen);
    } else if (prev !== SLOT_NONE && g < oldest) {
      if (live(g)) evicted++;
      out.writeUInt16LE(SLOT_NONE, at + S.prev);
      out.writeUInt32LE(g, at + S.gen);
    } else {
      out.writeUInt16LE(prev, at + S.prev);
      out.writeUInt32LE(g, at + S.gen);
    }
  }
  return { slots: out, gen: next, lost, evicted };
}

/** `slots` with the previous backend cleared in every entry of a
 *  generation `expired` says is over; null when there is none to clear. */
export function expireTable(slots: Buffer, expired: (g: number) => boolean): Buffer | null {
  let out: Buffer | null = null;
  for (let at = 0; at < slots.length; at += S.size) {
    if (slots.readUInt16LE(at + S.prev) === SLOT_NONE || !expired(slots.readUInt32LE(at + S.gen))) continue;
    out ??= Buffer.from(slots);
    out.writeUInt16LE(SLOT_NONE, at + S.prev);
  }
  return out;
}

/** Entries that name a previous backend, and the backend ids they name. */
export function chainedEntries(slots: Buffer): { entries: number; backends: Set<number> } {
  let entries = 0;
  const backends = new Set<number>();
  for (let at = 0; at < slots.length; at += S.size) {
    const prev = slots.readUInt16LE(at + S.prev);
    if (prev === SLOT_NONE) continue;
    entries++;
    backends.add(prev);
  }
  return { entries, backends };
}

/** The generations of the entries that name a previous backend. */
export function chainedGenerations(slots: Buffer): Set<number> {
  const gens = new Set<number>();
  for (let at = 0; at < slots.length; at += S.size) {
    if (slots.readUInt16LE(at + S.prev) !== SLOT_NONE) gens.add(slots.readUInt32LE(at + S.gen));
  }
  return gens;
}
