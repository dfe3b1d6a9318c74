// The load balancer's planner, without a kernel: states are decoded from
// buffers laid out as the kernel's maps hold them, and plans are played on
// them write by write. After every single write, what a packet in flight
// would find must be valid (a VIP it can reach has its bit, its id and a
// table no shorter than its size, and every backend that table names is in
// use, of that VIP and not removed).
import { describe, expect, it } from 'vitest';
import { validateConfig, vipName, type LbConfig } from '../../src/programs/lb/config.js';
import {
  LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, SLOT_NONE, decodeBackend, decodeVip, encodeVipKey, isStateless, type BackendEntry,
} from '../../src/programs/lb/layout.js';
import { NoRoomError, planApply, planExpiry, tableName, type LbPlan, type Step, type TableBuild } from '../../src/programs/lb/plan.js';
import { chainTable } from '../../src/programs/lb/chain.js';
import { NO_BACKEND } from '../../src/programs/lb/maglev.js';
import { decodeState, type LbState } from '../../src/programs/lb/state.js';
import { VIP_BITS_WORDS, vipBit, vipIndex } from '../../src/programs/lb/vipbits.js';

const HZ = 250;
const K = LAYOUT.lb_vip_key.size;
const B = LAYOUT.lb_backend.size;
const F = LAYOUT.lb_vip_fwd.size;

/** The balancer's maps as buffers, changed one write at a time. */
class Kernel {
  config: Buffer | null = null;
  vips = new Map<string, [Buffer, Buffer]>();
  backends = Buffer.alloc(LB_MAX_BACKENDS * B);
  /** VIP id -> the table there, as it was built. */
  tables = new Map<number, TableBuild>();
  vipIds = Buffer.alloc(LB_MAX_VIPS * K);
  vipBits = Buffer.alloc(VIP_BITS_WORDS * 8);
  forwarding = Buffer.alloc(LB_MAX_VIPS * F);
  vipIndex = Buffer.alloc(VIP_BITS_WORDS * 64 * 4);
  zeroed: Array<[string, number[]]> = [];

  state(): LbState {
    return decodeState({
      config: this.config,
      vips: [...this.vips.values()].map(([k, v]) => [Buffer.from(k), Buffer.from(v)]),
      backends: Buffer.from(this.backends),
      tables: new Map([...this.tables].map(([id, t]) => [id, t.name])),
      vipIds: Buffer.from(this.vipIds),
      vipBits: Buffer.from(this.vipBits),
      forwarding: Buffer.from(this.forwarding),
      vipIndex: Buffer.from(this.vipIndex),
      slots: new Map([...this.tables].filter(([id, t]) => t.slots && isStateless(this.forwarding, id * F)).map(([id, t]) => [id, Buffer.from(t.slots!)])),
    });
  }

  /** Play the plan, checking after each write what packets would find. */
  play(plan: LbPlan): void {
    for (const step of plan.steps) {
      this.step(step);
      this.check(step.what);
    }
  }

  step(step: Step): void {
    switch (step.kind) {
      case 'write':
        step.keys.forEach((key, i) => this.write(step.map, key, step.values[i]));
        return;
      case 'zero':
        this.zeroed.push([step.map, step.ids]);
        return;
      case 'tables':
        for (const t of step.tables) this.tables.set(t.vipId, t);
        return;
      case 'delete':
        for (const key of step.keys) this.vips.delete(key.toString('hex'));
        return;
      case 'untable':
        for (const id of step.ids) this.tables.delete(id);
    }
  }

  write(map: string, key: number | Buffer, value: Buffer): void {
    const at = typeof key === 'number' ? key : -1;
    if (map === 'lb_config') this.config = Buffer.from(value);
    else if (map === 'lb_vips' && typeof key !== 'number') this.vips.set(key.toString('hex'), [Buffer.from(key), Buffer.from(value)]);
    else if (map === 'lb_backends') value.copy(this.backends, at * B);
    else if (map === 'lb_vip_ids') value.copy(this.vipIds, at * K);
    else if (map === 'lb_vip_bits') value.copy(this.vipBits, at * 8);
    else if (map === 'lb_vip_fwd') value.copy(this.forwarding, at * F);
    else if (map === 'lb_vip_index') value.copy(this.vipIndex, at * 4);
    else throw new Error(`unexpected write to ${map}`);
  }

  backend(id: number): BackendEntry | null {
    return decodeBackend(this.backends, id * B);
  }

  check(after: string): void {
    for (const [key, value] of this.vips.values()) {
      const { id, tableSize } = decodeVip(value);
      const bit = vipBit(key);
      const where = `after "${after}", VIP id ${id}`;
      expect(this.vipBits[bit >> 3] & (1 << (bit & 7)), `${where}: bit`).not.toBe(0);
      expect(this.vipIds.subarray(id * K, (id + 1) * K).equals(key), `${where}: lb_vip_ids`).toBe(true);
      const table = this.tables.get(id);
      expect(table, `${where}: table`).toBeDefined();
      expect(table!.size, `${where}: table size`).toBeGreaterThanOrEqual(tableSize);
      const wrong = table!.backends.filter((b) => {
        const e = b.weight > 0 ? this.backend(b.id) : null;
        return e && (e.vipId !== id || e.removed);
      });
      const missing = table!.backends.filter((b) => b.weight > 0 && !this.backend(b.id));
      expect([where, wrong, missing]).toEqual([where, [], []]);
      // A stateless table's entries: each backend it names now of the VIP
      // and not removed, each previous one of the VIP (removed or not).
      if (table!.slots) {
        const bad = new Set<string>();
        for (let at = 0; at < table!.slots.length; at += 8) {
          const cur = table!.slots.readUInt16LE(at);
          const prev = table!.slots.readUInt16LE(at + 2);
          const c = cur === SLOT_NONE ? null : this.backend(cur);
          if (cur !== SLOT_NONE && (!c || c.vipId !== id || c.removed)) bad.add(`cur ${cur}`);
          const p = prev === SLOT_NONE ? null : this.backend(prev);
          if (prev !== SLOT_NONE && (!p || p.vipId !== id)) bad.add(`prev ${prev}`);
        }
        expect([where, [...bad]]).toEqual([where, []]);
      }
    }
  }
}

const NAT = { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' };
const A = { address: '10.0.0.10', port: 80, protocol: 'tcp' };
const V6 = { address: 'fd00::10', port: 80, protocol: 'udp' };
const cfg = (...vips: unknown[]): LbConfig => validateConfig({ nat: NAT, vips });
const be = (...addrs: string[]) => addrs.map((address) => ({ address }));

const plan = (k: Kernel, want: LbConfig, reclaimable?: Set<number>) => planApply(k.state(), want, { hz: HZ, reclaimable });
const apply = (k: Kernel, want: LbConfig) => {
  const p = plan(k, want);
  k.play(p);
  return p;
};
const whats = (p: LbPlan) => p.steps.map((s) => s.what);
/** Backend id -> [VIP id, address, weight, removed]. */
const held = (k: Kernel) => [...k.state().backends].map(([id, b]) => [id, b.vipId, b.address, b.weight, b.removed]);
const zero = { vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: 0, backends_written: 0 };

describe('lb plan', () => {
  it('hands out VIP and backend ids in the config\'s order, and writes in the documented order', () => {
    const k = new Kernel();
    const p = apply(k, cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3') }, { ...V6, backends: be('fd00::2') }));
    expect(whats(p)).toEqual([
      'NAT and timeouts', 'counters of new VIPs', 'counters of new backends', 'backend entries', '2 Maglev table(s)', 'VIP ids', 'VIP bits', 'VIPs',
    ]);
    expect(p.result).toEqual({ ...zero, vips_added: 2, tables_written: 2, backends_written: 3 });
    expect(held(k)).toEqual([[0, 0, '10.0.0.2', 1, false], [1, 0, '10.0.0.3', 1, false], [2, 1, 'fd00::2', 1, false]]);
    expect(k.zeroed).toEqual([['lb_vip_stats', [0, 1]], ['lb_be_stats', [0, 1, 2]]]);
    expect([...k.state().vips].map(([n, v]) => [n, v.id, v.tableSize])).toEqual([['tcp:10.0.0.10:80', 0, 65537], ['udp:[fd00::10]:80', 1, 65537]]);
    const t = k.tables.get(0)!;
    expect(t).toEqual({ vipId: 0, size: 65537, name: t.name, backends: [{ id: 0, key: '10.0.0.2:80', weight: 1 }, { id: 1, key: '10.0.0.3:80', weight: 1 }] });
    expect(t.name).toMatch(/^lb_[0-9a-f]{12}$/);
  });

  it('plans nothing for the config the kernel holds, and says the same of the config read back', () => {
    const k = new Kernel();
    const c = cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3') }, { ...V6, backends: be('fd00::2') });
    apply(k, c);
    expect(plan(k, c)).toEqual({ steps: [], result: zero });
    expect(k.state().config).toEqual(c);
    expect(plan(k, k.state().config).steps).toEqual([]);
  });

  it('rebuilds a table only when its inputs change: size, or a backend\'s id, identity or weight', () => {
    const k = new Kernel();
    apply(k, cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3') }, { ...V6, backends: be('fd00::2') }));
    const untouched = k.tables.get(1)!.name;
    // A weight: that VIP's table and its backend's entry, nothing else.
    let p = apply(k, cfg({ ...A, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3', weight: 3 }] }, { ...V6, backends: be('fd00::2') }));
    expect(whats(p)).toEqual(['backend entries', '1 Maglev table(s)']);
    expect(p.result).toEqual({ ...zero, vips_changed: 1, tables_written: 1, backends_written: 1 });
    expect(p.steps[1]).toMatchObject({ kind: 'tables', tables: [{ vipId: 0 }] });
    // A MAC and the order of the list are not inputs of the table.
    p = apply(k, cfg({ ...A, backends: [{ address: '10.0.0.3', weight: 3 }, { address: '10.0.0.2', mac: '02:00:00:00:00:02' }] }, { ...V6, backends: be('fd00::2') }));
    expect(whats(p)).toEqual(['backend entries']);
    // Nor is a backend of weight 0 (it takes no entries): added, it gets an
    // entry and no new table; its weight raised, the table changes.
    const c = (w: number) => cfg({ ...A, backends: [{ address: '10.0.0.3', weight: 3 }, { address: '10.0.0.2', mac: '02:00:00:00:00:02' }, { address: '10.0.0.4', weight: w }] }, { ...V6, backends: be('fd00::2') });
    expect(whats(apply(k, c(0)))).toEqual(['counters of new backends', 'backend entries']);
    expect(whats(apply(k, c(1)))).toEqual(['backend entries', '1 Maglev table(s)']);
    // The size: shrinking is written before the new table, growing after.
    const sized = (table_size: number) => cfg({ ...A, table_size, backends: be('10.0.0.2') }, { ...V6, backends: be('fd00::2') });
    expect(whats(apply(k, sized(65537)))).toEqual(['backend entries', '1 Maglev table(s)', 'removed backends']);
    expect(whats(apply(k, sized(7)))).toEqual(['sizes of shrinking tables', '1 Maglev table(s)']);
    expect(whats(apply(k, sized(131071)))).toEqual(['1 Maglev table(s)', 'VIPs']);
    expect(k.tables.get(1)!.name).toBe(untouched);
  });

  it('swaps the table before it marks a removed backend, which keeps its id; added back, it has the same id', () => {
    const k = new Kernel();
    apply(k, cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4') }));
    const p = apply(k, cfg({ ...A, backends: be('10.0.0.2', '10.0.0.4') }));
    expect(whats(p)).toEqual(['1 Maglev table(s)', 'removed backends']);
    expect(p.result).toEqual({ ...zero, vips_changed: 1, tables_written: 1, backends_written: 1 });
    expect(held(k)).toEqual([[0, 0, '10.0.0.2', 1, false], [1, 0, '10.0.0.3', 1, true], [2, 0, '10.0.0.4', 1, false]]);
    expect(k.tables.get(0)!.backends.map((b) => b.id)).toEqual([0, 2]);
    // New backends take free ids, never a removed backend's.
    apply(k, cfg({ ...A, backends: be('10.0.0.2', '10.0.0.4', '10.0.0.5') }));
    expect(held(k)).toContainEqual([3, 0, '10.0.0.5', 1, false]);
    // Back again: its entry is written before the table that names it.
    const back = apply(k, cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5') }));
    expect(whats(back)).toEqual(['backend entries', '1 Maglev table(s)']);
    expect(held(k)).toContainEqual([1, 0, '10.0.0.3', 1, false]);
    expect(k.zeroed.at(-1)).toEqual(['lb_be_stats', [3]]); // a revived backend keeps its counters
  });

  it('writes a VIP\'s forwarding before the VIP can be reached, changes it alone, and zeroes it with the VIP', () => {
    const k = new Kernel();
    const ipip = { ...A, forwarding: 'ipip', encap_source_ipv4: '10.0.0.1', backends: be('10.0.0.2') };
    const p = apply(k, cfg(ipip));
    expect(whats(p)).toEqual([
      'NAT and timeouts', 'counters of new VIPs', 'counters of new backends', 'backend entries', '1 Maglev table(s)', 'VIP forwarding', 'VIP ids', 'VIP bits', 'VIPs',
    ]);
    expect(k.state().config.vips[0]).toMatchObject({ forwarding: 'ipip', encap_source_ipv4: '10.0.0.1' });
    expect(plan(k, k.state().config).steps).toEqual([]);
    // Only the forwarding changes: one write, and the VIP counts as changed.
    const gue = apply(k, cfg({ ...ipip, forwarding: 'gue', gue_port: 6081 }));
    expect(whats(gue)).toEqual(['VIP forwarding']);
    expect(gue.result).toEqual({ ...zero, vips_changed: 1 });
    expect(k.state().config.vips[0]).toMatchObject({ forwarding: 'gue', gue_port: 6081 });
    // Gone, its entry is zero again (NAT, as an id no VIP holds).
    const gone = apply(k, cfg({ ...V6, backends: be('fd00::2') }));
    expect(whats(gone).slice(-1)).toEqual(['forwarding of removed VIPs']);
    expect(k.forwarding.every((b) => b === 0)).toBe(true);
  });

  it('removes a VIP after its table, frees its backends, ids and bits; a new VIP takes ids free before the apply', () => {
    const k = new Kernel();
    apply(k, cfg({ ...A, backends: be('10.0.0.2') }, { ...V6, backends: be('fd00::2', 'fd00::3') }));
    const B6 = { address: 'fd00::11', port: 80, protocol: 'tcp' };
    const p = apply(k, cfg({ ...A, backends: be('10.0.0.2') }, { ...B6, backends: be('fd00::4') }));
    expect(whats(p)).toEqual([
      'counters of new VIPs', 'counters of new backends', 'backend entries', '1 Maglev table(s)', 'VIP ids', 'VIP bits', 'VIPs',
      'removed VIPs', 'tables of no VIP', 'backends of removed VIPs', 'VIP ids of removed VIPs', 'VIP bits of removed VIPs',
    ]);
    expect(p.result).toEqual({ ...zero, vips_added: 1, vips_removed: 1, tables_written: 1, backends_written: 1 });
    expect(p.steps.find((s) => s.kind === 'untable')).toMatchObject({ ids: [1] });
    expect(held(k)).toEqual([[0, 0, '10.0.0.2', 1, false], [3, 2, 'fd00::4', 1, false]]);
    expect([...k.tables.keys()].sort()).toEqual([0, 2]);
    const ids = Buffer.alloc(LB_MAX_VIPS * K);
    encodeVipKey(validateConfig({ nat: NAT, vips: [{ ...A, backends: be('10.0.0.2') }] }).vips[0]).copy(ids, 0);
    encodeVipKey(validateConfig({ nat: NAT, vips: [{ ...B6, backends: be('fd00::4') }] }).vips[0]).copy(ids, 2 * K);
    expect(k.vipIds.equals(ids)).toBe(true);
  });

  it('plays every change of a long sequence with nothing invalid in between', () => {
    const k = new Kernel();
    const addrs = (n: number, from = 2) => Array.from({ length: n }, (_, i) => ({ address: `10.0.${(from + i) >> 8}.${(from + i) & 255}`, weight: 1 + (i % 3) }));
    const configs = [
      cfg({ ...A, backends: addrs(10) }, { ...A, port: 81, backends: addrs(3) }),
      cfg({ ...A, backends: addrs(8) }, { ...A, port: 81, table_size: 7, backends: addrs(3) }),
      cfg({ ...A, table_size: 131071, backends: addrs(12, 5) }),
      cfg({ ...A, port: 82, backends: addrs(2) }, { ...A, table_size: 131071, backends: [...addrs(12, 5).slice(3), { address: '10.0.0.2', weight: 0 }] }),
      cfg({ ...A, backends: addrs(4).map((b) => ({ ...b, weight: 0 })) }),
      cfg(),
      cfg({ ...A, backends: addrs(10) }),
    ];
    for (const c of configs) {
      apply(k, c);
      expect(plan(k, c).steps).toEqual([]);
      expect(k.state().config.vips.map(vipName).sort()).toEqual(c.vips.map(vipName).sort());
    }
  });

  it('repairs a table that is not the one its inputs make, and clears what no VIP holds', () => {
    const k = new Kernel();
    const c = cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3') }, { ...V6, backends: be('fd00::2') });
    apply(k, c);
    // A table written by hand (or left by an apply killed between its
    // backend entries and the swap), an orphan table and an orphan entry.
    k.tables.set(1, { ...k.tables.get(1)!, name: 'lb_table' });
    k.tables.set(7, { vipId: 7, size: 7, backends: [], name: tableName(7, [], []) });
    k.write('lb_backends', 9, Buffer.from(k.backends.subarray(0, B)).fill(7, LAYOUT.lb_backend.vip_id, LAYOUT.lb_backend.vip_id + 1));
    const p = apply(k, c);
    expect(whats(p)).toEqual(['1 Maglev table(s)', 'tables of no VIP', 'backends of removed VIPs']);
    expect(p.steps[0]).toMatchObject({ tables: [{ vipId: 1 }] });
    expect(p.steps[1]).toMatchObject({ ids: [7] });
    expect(p.steps[2]).toMatchObject({ keys: [9] });
    expect(p.result).toEqual({ ...zero, vips_changed: 1, tables_written: 1 });
    expect(plan(k, c).steps).toEqual([]);
  });

  it('names a table by exactly what makes it: not the order of its backends, nor those of weight 0', () => {
    const list = [{ address: '10.0.0.2', port: 80, weight: 1 }, { address: '10.0.0.3', port: 80, weight: 2 }];
    const name = tableName(65537, list, [0, 1]);
    expect(tableName(65537, [...list].reverse(), [1, 0])).toBe(name);
    expect(tableName(65537, [...list, { address: '10.0.0.9', port: 80, weight: 0 }], [0, 1, 5])).toBe(name);
    const others = [
      tableName(7, list, [0, 1]),
      tableName(65537, [list[0], { ...list[1], weight: 3 }], [0, 1]),
      tableName(65537, list, [0, 2]),
      tableName(65537, list, [1, 0]),
      tableName(65537, [list[0], { ...list[1], port: 81 }], [0, 1]),
      tableName(65537, [list[0], { ...list[1], address: '10.0.0.4' }], [0, 1]),
      tableName(65537, [list[0]], [0]),
      tableName(65537, [], []),
    ];
    expect(new Set([name, ...others]).size).toBe(9);
    expect(name).toHaveLength(15); // the kernel's limit for a map name
  });
});

// Thousands of backends, played write by write: slower than the rest.
describe('lb plan: room for backends', () => {
  const many = (first: number, n: number) => Array.from({ length: n }, (_, i) => ({ address: `10.${100 + ((first + i) >> 16)}.${((first + i) >> 8) & 255}.${(first + i) & 255}` }));

  it('refuses a config with no id left, before any write', () => {
    const k = new Kernel();
    apply(k, cfg({ ...A, table_size: 7, backends: many(0, LB_MAX_BACKENDS) }));
    const before = k.state();
    // One backend replaced: the old one stays as a tombstone (the table
    // still names it while the apply runs), and no id is left for the new.
    const err = (() => {
      try {
        planApply(before, cfg({ ...A, table_size: 7, backends: many(1, LB_MAX_BACKENDS) }), { hz: HZ });
      } catch (e) {
        return e as NoRoomError;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(NoRoomError);
    expect(err!.message).toBe('no room for backend 10.100.64.0 port 80 of VIP tcp:10.0.0.10:80: at most 16384 backends, removed ones included');
    expect(err!.tombstones).toBe(false); // none held before: nothing to reclaim
    expect(k.state().backends).toEqual(before.backends);
  }, 30_000);

  it('gives new backends the ids of removed ones no flow uses, lowest first, never one a flow still uses', () => {
    const k = new Kernel();
    // 16 applies of 1000 new backends: 15,000 tombstones and 1000 live.
    for (let i = 0; i < 16; i++) apply(k, cfg({ ...A, table_size: 7, backends: many(i * 1000, 1000) }));
    expect(k.state().backends.size).toBe(16000);
    const next = cfg({ ...A, table_size: 7, backends: many(16000, 1000) });
    expect(() => plan(k, next)).toThrow(NoRoomError);
    try {
      plan(k, next);
    } catch (e) {
      expect((e as NoRoomError).tombstones).toBe(true);
    }
    // Flows still use tombstones 0 and 5; the rest are free to take.
    const tombstones = [...k.state().backends].filter(([, b]) => b.removed).map(([id]) => id);
    const reclaimable = new Set(tombstones.filter((id) => id !== 0 && id !== 5));
    const p = plan(k, next, reclaimable);
    k.play(p);
    const ids = [...k.state().backends].filter(([, b]) => !b.removed && b.vipId === 0).map(([id]) => id);
    // 384 never used, then removed ones from the lowest, passing 0 and 5.
    expect(ids).toEqual([...Array.from({ length: 384 }, (_, i) => 16000 + i), 1, 2, 3, 4, ...Array.from({ length: 612 }, (_, i) => 6 + i)].sort((x, y) => x - y));
    expect(held(k).filter(([id]) => id === 0 || id === 5)).toEqual([[0, 0, '10.100.0.0', 1, true], [5, 0, '10.100.0.5', 1, true]]);
    // Reused ids start counting afresh, as the table's backends.
    expect(k.zeroed.at(-1)![1]).toHaveLength(1000);
    // With only flows' tombstones left, the message says so.
    const full = [...k.state().backends].filter(([, b]) => b.removed).map(([id]) => id);
    expect(() => plan(k, cfg({ ...A, table_size: 7, backends: many(17000, 16384 - 2) }), new Set(full.filter((id) => id > 5)))).toThrow(
      /^no room for backend [\d.]+ port 80 of VIP tcp:10.0.0.10:80: at most 16384 backends, removed ones included \(2 removed backends still have flows\)$/,
    );
  }, 30_000);

  it('does not take a removed backend that the same apply brings back', () => {
    const k = new Kernel();
    apply(k, cfg({ ...A, table_size: 7, backends: many(0, LB_MAX_BACKENDS) }));
    apply(k, cfg({ ...A, table_size: 7, backends: many(2, LB_MAX_BACKENDS - 2) })); // ids 0 and 1 removed
    const back = [...many(0, 1), ...many(2, LB_MAX_BACKENDS - 2), ...many(20000, 1)];
    k.play(plan(k, cfg({ ...A, table_size: 7, backends: back }), new Set([0, 1])));
    expect(held(k).filter(([id]) => (id as number) <= 1)).toEqual([[0, 0, '10.100.0.0', 1, false], [1, 0, '10.100.78.32', 1, false]]);
  }, 30_000);
});

describe('chaining (stateless VIPs)', () => {
  const N = SLOT_NONE;
  /** Slots from [cur, prev, gen] triples. */
  const slotsOf = (entries: Array<[number, number, number]>) => {
    const b = Buffer.alloc(entries.length * 8);
    entries.forEach(([cur, prev, gen], i) => {
      b.writeUInt16LE(cur, i * 8);
      b.writeUInt16LE(prev, i * 8 + 2);
      b.writeUInt32LE(gen, i * 8 + 4);
    });
    return b;
  };
  const triples = (b: Buffer) => Array.from({ length: b.length / 8 }, (_, i) => [b.readUInt16LE(i * 8), b.readUInt16LE(i * 8 + 2), b.readUInt32LE(i * 8 + 4)]);
  const column = (...ids: number[]) => Uint32Array.from(ids.map((id) => (id === N ? NO_BACKEND : id)));

  it('chainTable: a changed entry names the backend before and the next generation; the others keep theirs', () => {
    const first = chainTable(null, column(0, 0, 1, 1, 2, 2, 0), 0, () => true);
    expect(first).toMatchObject({ gen: 1, lost: 0, evicted: 0 });
    expect(triples(first.slots)).toEqual([[0, N, 1], [0, N, 1], [1, N, 1], [1, N, 1], [2, N, 1], [2, N, 1], [0, N, 1]]);
    const second = chainTable(first.slots, column(0, 3, 1, 1, 2, 3, N), 1, () => true);
    expect(second).toMatchObject({ gen: 2, lost: 0, evicted: 0 });
    expect(triples(second.slots)).toEqual([[0, N, 1], [3, 0, 2], [1, N, 1], [1, N, 1], [2, N, 1], [3, 2, 2], [N, 0, 2]]);
    // Entry 1 changes again while its previous backend is live: lost;
    // entry 5 too, but its generation's window is over: not counted.
    const third = chainTable(second.slots, column(0, 1, 1, 3, 2, 1, N), 2, () => true);
    expect(triples(third.slots)).toEqual([[0, N, 1], [1, 3, 3], [1, N, 1], [3, 1, 3], [2, N, 1], [1, 3, 3], [N, 0, 2]]);
    expect(chainTable(second.slots, column(0, 1, 1, 3, 2, 1, N), 2, () => true)).toMatchObject({ lost: 2, evicted: 0 });
    expect(chainTable(second.slots, column(0, 1, 1, 3, 2, 1, N), 2, (g) => g !== 2)).toMatchObject({ lost: 0 });
    // A table of another size is no predecessor: nothing is chained.
    expect(triples(chainTable(second.slots, column(0, 1, 2), 2, () => true).slots)).toEqual([[0, N, 3], [1, N, 3], [2, N, 3]]);
  });

  it('chainTable: a previous backend of a change CHAIN_GENS changes old is dropped, counted while its window lasts', () => {
    const old = slotsOf([[0, 1, 5], [1, 0, 6], [2, 1, 40]]);
    const c = chainTable(old, column(0, 1, 2), 36, () => true);
    expect(triples(c.slots)).toEqual([[0, N, 5], [1, 0, 6], [2, 1, 40]]);
    expect(c).toMatchObject({ gen: 37, lost: 0, evicted: 1 });
    expect(chainTable(old, column(0, 1, 2), 36, (g) => g !== 5)).toMatchObject({ evicted: 0 });
  });

  const S = { ...A, forwarding: 'gue', stateless: true, chain_window_s: 60 };
  const scfg = (...vips: unknown[]): LbConfig => validateConfig({ encap_source_ipv4: '10.0.0.1', vips });
  const at = (s: number) => BigInt(s) * 1_000_000_000n;
  const planAt = (k: Kernel, want: LbConfig, now: bigint) => planApply(k.state(), want, { hz: HZ, now });

  it('records each change before its table, keeps the rule across changes, and reports entries changed again in their window', () => {
    const k = new Kernel();
    const p1 = planAt(k, scfg({ ...S, table_size: 65537, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4') }), at(1000));
    expect(whats(p1).indexOf('chaining records')).toBeLessThan(whats(p1).indexOf('1 Maglev table(s)'));
    k.play(p1);
    expect(k.state().chains.get(0)).toMatchObject({ gen: 1 });
    expect(k.state().chains.get(0)!.at[1]).toBe(at(1000));
    const t1 = k.tables.get(0)!.slots!;
    const p2 = planAt(k, scfg({ ...S, table_size: 65537, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5') }), at(1010));
    expect(p2.result.chaining).toBeUndefined();
    k.play(p2);
    const t2 = k.tables.get(0)!.slots!;
    const changed = triples(t2).map((e, i) => [...e, t1.readUInt16LE(i * 8)]).filter(([cur, , , was]) => cur !== was);
    // Mostly to the new backend (id 3), a few among the others.
    expect(changed.filter(([cur]) => cur === 3).length).toBeGreaterThan(65537 / 4 - 2000);
    expect(changed.filter(([cur, prev, gen, was]) => prev !== was || gen !== 2)).toEqual([]);
    // Backend 0 leaves: entries that moved in the last change and move again lose their previous backend.
    const third = scfg({ ...S, table_size: 65537, backends: be('10.0.0.3', '10.0.0.4', '10.0.0.5') });
    const lost = (slots: Buffer, next: Buffer) => triples(next).filter(([cur], i) => cur !== slots.readUInt16LE(i * 8) && slots.readUInt16LE(i * 8 + 2) !== N).length;
    const p3 = planAt(k, third, at(1020));
    const t3 = p3.steps.flatMap((s) => (s.kind === 'tables' ? s.tables : []))[0].slots!;
    expect(lost(t2, t3)).toBeGreaterThan(0);
    expect(p3.result.chaining).toEqual([{ vip: 'tcp:10.0.0.10:80', lost: lost(t2, t3), evicted: 0 }]);
    // The same change once the window of the last one is over: nothing to report.
    expect(planAt(k, third, at(1010 + 60)).result.chaining).toBeUndefined();
    k.play(p3);
    expect(k.state().chains.get(0)).toMatchObject({ gen: 3 });
  });

  it('expires each generation\'s chaining when its window is over, under the same table name', () => {
    const k = new Kernel();
    k.play(planAt(k, scfg({ ...S, backends: be('10.0.0.2', '10.0.0.3') }), at(100)));
    k.play(planAt(k, scfg({ ...S, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4') }), at(110)));
    k.play(planAt(k, scfg({ ...S, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5') }), at(130)));
    const name = k.tables.get(0)!.name;
    const gens = () => new Set(triples(k.tables.get(0)!.slots!).filter(([, prev]) => prev !== N).map(([, , g]) => g));
    expect(gens()).toEqual(new Set([2, 3]));
    expect(planExpiry(k.state(), at(169))).toEqual({ plan: { steps: [], result: zero }, next: at(170) });
    const e = planExpiry(k.state(), at(170));
    expect(e.next).toBe(at(190));
    k.play(e.plan);
    expect([k.tables.get(0)!.name, gens()]).toEqual([name, new Set([3])]);
    k.play(planExpiry(k.state(), at(190)).plan);
    expect(gens()).toEqual(new Set());
    expect(planExpiry(k.state(), at(1000))).toEqual({ plan: { steps: [], result: zero }, next: undefined });
    // The apply of the same config writes nothing after an expiry.
    expect(planAt(k, scfg({ ...S, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5') }), at(1000)).steps).toEqual([]);
  });

  it('indexes stateless VIPs only, and none whose bit another stateless VIP shares', () => {
    const k = new Kernel();
    apply(k, scfg({ ...S, backends: be('10.0.0.2') }, { ...A, port: 81, forwarding: 'gue', backends: be('10.0.0.2') }));
    const key = encodeVipKey({ address: '10.0.0.10', port: 80, protocol: 'tcp' });
    const bit = vipBit(key);
    expect(k.vipIndex.readUInt32LE(bit * 4)).toBe(1);
    expect([...Array(k.vipIndex.length / 4).keys()].filter((i) => k.vipIndex.readUInt32LE(i * 4))).toEqual([bit]);
    const twins = vipIndex([{ key, id: 0 }, { key, id: 1 }]);
    expect(twins.readUInt32LE(bit * 4)).toBe(0);
  });
});
