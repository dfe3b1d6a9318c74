// Applying a config: the kernel's state read (state.ts), the writes planned
// (plan.ts), then made in the plan's order, each recorded in an undo journal
// first, so that a kernel error part way takes every write back (the error
// that stopped the apply is the one reported). A Maglev table is never
// written in place: a new inner map is filled and swapped in.
import { BpfMap, MAP_F, MAP_TYPE, possibleCpus } from '../../libbpf/index.js';
import { bootTimeNs } from '../../sys/clock.js';
import { Undo } from '../../undo.js';
import { maglevTable } from './maglev.js';
import { kernelHz } from './clock.js';
import { LAYOUT, u32 } from './layout.js';
import { chainedEntries, plainTable } from './chain.js';
import type { LbConfig } from './config.js';
import { NoRoomError, planApply, planExpiry, type ApplyResult, type LbPlan, type Step, type TableBuild } from './plan.js';
import { flowBackends, readState, type LbMaps, type LbState } from './state.js';

/** As struct lb_table's in lb_maps.h: the outer map takes only inner maps
 *  with the template's flags. */
const TABLE_FLAGS = MAP_F.INNER_MAP | MAP_F.MMAPABLE;

/**
 * Make the kernel hold `want`, writing only what differs (see plan.ts for
 * the order). When new backends find no free id, the ids of removed
 * backends that no flow uses any more are taken (the flow tables are
 * walked only then).
 */
export function applyConfig(maps: LbMaps, want: LbConfig, have: LbState = readState(maps)): ApplyResult {
  const plan = planFor(maps, have, want);
  executePlan(maps, plan);
  return plan.result;
}

/** The writes that would make the kernel hold `want`. */
export function planFor(maps: LbMaps, have: LbState, want: LbConfig): LbPlan {
  const hz = kernelHz();
  const now = bootTimeNs();
  try {
    return planApply(have, want, { hz, now });
  } catch (err) {
    if (!(err instanceof NoRoomError) || !err.tombstones) throw err;
    // A removed backend is still used by its flows, and by the entries
    // of stateless tables that name it as their previous backend.
    const used = flowBackends(maps);
    for (const slots of have.slots.values()) for (const id of chainedEntries(slots).backends) used.add(id);
    const reclaimable = new Set([...have.backends].filter(([id, b]) => b.removed && !used.has(id)).map(([id]) => id));
    return planApply(have, want, { hz, now, reclaimable });
  }
}

/**
 * End the chaining whose window has passed (plan.ts planExpiry): the
 * tables of the stateless VIPs that have some, swapped with those entries'
 * previous backend cleared. Returns how many tables were swapped and when
 * the next chaining still in place expires (CLOCK_BOOTTIME ns), if any.
 */
export function expireChaining(maps: LbMaps, now = bootTimeNs()): { tables: number; next?: bigint } {
  const { plan, next } = planExpiry(readState(maps), now);
  executePlan(maps, plan);
  return { tables: plan.result.tables_written, next };
}

/** Make the plan's writes in order; on an error, take back those made. */
export function executePlan(maps: LbMaps, plan: LbPlan): void {
  // Tables built, and tables swapped out (held for the undo), closed once
  // the apply is over either way: the kernel holds what it still uses.
  const opened: BpfMap[] = [];
  try {
    Undo.run((undo) => {
      for (const step of plan.steps) execute(maps, step, undo, opened);
    });
  } finally {
    for (const m of opened) m.close();
  }
}

function execute(maps: LbMaps, step: Step, undo: Undo, opened: BpfMap[]): void {
  switch (step.kind) {
    case 'write': {
      const map = maps[step.map];
      // Recorded before the batch: a batch that fails part way may have
      // written some of its entries, and putting back an entry that was
      // not written changes nothing.
      undo.push(() => step.keys.forEach((k, i) => restore(map, k, step.old[i])));
      const keys = Buffer.alloc(step.keys.length * map.keySize);
      step.keys.forEach((k, i) => (typeof k === 'number' ? keys.writeUInt32LE(k, i * 4) : k.copy(keys, i * map.keySize)));
      map.updateBatch(keys, Buffer.concat(step.values), step.keys.length);
      return;
    }
    case 'zero': {
      const map = maps[step.map];
      // The rows as they were, in one batch read (a lookup per row took
      // 130 ms for 10,000 new backends).
      const size = Math.ceil(map.valueSize / 8) * 8 * possibleCpus();
      const old = map.values(Math.max(...step.ids) + 1);
      undo.push(() => map.updateIndexes(step.ids, step.ids.map((id) => old.subarray(id * size, (id + 1) * size))));
      const zero = Buffer.alloc(size);
      map.updateIndexes(step.ids, step.ids.map(() => zero));
      return;
    }
    case 'tables': {
      const built = step.tables.map((t) => {
        const table = buildTable(t);
        opened.push(table);
        return table;
      });
      swap(maps.lb_maglev, step.tables.map((t) => t.vipId), undo, opened);
      // Every new table in one batch update of the outer map: the kernel
      // waits for running programs to let go of the old tables (an RCU
      // grace period) once per update call, not once per table.
      maps.lb_maglev.updateIndexes(step.tables.map((t) => t.vipId), built.map((t) => u32(t.fd)));
      return;
    }
    case 'delete': {
      const map = maps[step.map];
      step.keys.forEach((key, i) => {
        if (!map.delete(key)) return;
        undo.push(() => map.update(key, step.old[i]));
      });
      return;
    }
    case 'untable': {
      swap(maps.lb_maglev, step.ids, undo, opened);
      // One by one: the kernel has no batch delete for an array of maps.
      for (const id of step.ids) maps.lb_maglev.delete(id);
    }
  }
}

/** Hold the tables now at `ids` of lb_maglev, and record how to put them back. */
function swap(outer: BpfMap, ids: number[], undo: Undo, opened: BpfMap[]): void {
  const old = ids.map((id) => {
    const held = outer.lookup(id);
    const table = held ? BpfMap.byId(held.readUInt32LE(0)) : null;
    if (table) opened.push(table);
    return table;
  });
  undo.push(() => ids.forEach((id, i) => (old[i] ? outer.update(id, u32(old[i]!.fd)) : outer.delete(id))));
}

function restore(map: BpfMap, key: number | Buffer, old: Buffer | null): void {
  if (old) map.update(key, old);
  else map.delete(key);
}

/** A new inner map holding the table, named after its inputs and filled
 *  through a memory mapping (one copy, not an update per entry). */
function buildTable(t: TableBuild): BpfMap {
  const slots = t.slots ?? plainTable(maglevTable(t.backends, t.size));
  const map = BpfMap.create(MAP_TYPE.ARRAY, t.name, 4, LAYOUT.lb_slot.size, t.size, TABLE_FLAGS);
  try {
    map.writeMapped(slots, t.size);
  } catch (err) {
    map.close();
    throw err;
  }
  return map;
}
