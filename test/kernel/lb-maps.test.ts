// The batch map walks the load balancer reads its state with, against real
// maps: every entry exactly once, however the kernel splits the walk.
import { afterEach, describe, expect, it } from 'vitest';
import { BpfMap, MAP_F, MAP_TYPE, possibleCpus } from '../../src/libbpf/index.js';
import { LAYOUT } from '../../src/programs/lb/layout.js';
import { CounterRows } from '../../src/programs/lb/status.js';

const fds: BpfMap[] = [];
afterEach(() => fds.splice(0).forEach((m) => m.close()));

/** A hash map of `count` entries: 8-byte keys, 12-byte values derived from them. */
function hashMap(count: number, maxEntries = 1024): { fd: BpfMap; want: Map<string, string> } {
  const fd = BpfMap.create(MAP_TYPE.HASH, 'xdplb_test', 8, 12, maxEntries);
  fds.push(fd);
  const keys = Buffer.alloc(8 * count);
  const values = Buffer.alloc(12 * count);
  const want = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    keys.writeBigUInt64LE(BigInt(i) * 7919n + 3n, i * 8);
    values.writeUInt32LE(i, i * 12);
    values.writeUInt32LE(i ^ 0xabcdef, i * 12 + 8);
    want.set(keys.subarray(i * 8, i * 8 + 8).toString('hex'), values.subarray(i * 12, i * 12 + 12).toString('hex'));
  }
  fd.updateBatch(keys, values, count);
  return { fd, want };
}

const asMap = (entries: Array<[Buffer, Buffer]>) => new Map(entries.map(([k, v]) => [k.toString('hex'), v.toString('hex')]));

describe('batch map walks', () => {
  it('reads every key and value of a hash map in one call', () => {
    const { fd, want } = hashMap(1000);
    const got = fd.entries();
    expect(got).toHaveLength(1000);
    expect(asMap(got)).toEqual(want);
    expect(fd.count()).toBe(1000);
  });

  it('reads each entry once when the walk takes many calls, buckets larger than a call included', () => {
    // One entry per call: a bucket of two or more is refused (ENOSPC) and
    // read again with more room.
    const { fd, want } = hashMap(1000);
    for (const chunk of [1, 7, 64]) {
      const got = fd.entries(chunk);
      expect(got).toHaveLength(1000);
      expect(asMap(got)).toEqual(want);
      expect(fd.count(chunk)).toBe(1000);
    }
  });

  it('reads an empty map as no entries', () => {
    const { fd } = hashMap(0);
    expect(fd.entries()).toEqual([]);
    expect(fd.count()).toBe(0);
  });

  it('reads an array map in key order', () => {
    const fd = BpfMap.create(MAP_TYPE.ARRAY, 'xdplb_test', 4, 4, 5);
    fds.push(fd);
    const keys = Buffer.alloc(20);
    const values = Buffer.alloc(20);
    for (let i = 0; i < 5; i++) {
      keys.writeUInt32LE(i, i * 4);
      values.writeUInt32LE(100 + i, i * 4);
    }
    fd.updateBatch(keys, values, 5);
    expect(fd.entries().map(([k, v]: [Buffer, Buffer]) => [k.readUInt32LE(0), v.readUInt32LE(0)])).toEqual([[0, 100], [1, 101], [2, 102], [3, 103], [4, 104]]);
  });
});

describe('mapped array reads and writes', () => {
  it('read back packed what was written, for values that are not a multiple of 8 bytes', () => {
    // 36-byte values (struct lb_backend) sit 40 bytes apart in the mapping.
    const fd = BpfMap.create(MAP_TYPE.ARRAY, 'xdplb_test', 4, 36, 1000, MAP_F.MMAPABLE);
    fds.push(fd);
    const values = Buffer.alloc(36 * 1000);
    for (let i = 0; i < values.length; i++) values[i] = (i * 31 + 7) & 0xff;
    fd.writeMapped(values, 1000);
    expect(fd.values(1000).equals(values)).toBe(true); // the kernel's view, element by element
    expect(fd.readMapped(1000).equals(values)).toBe(true);
    expect(fd.readMapped(10).equals(values.subarray(0, 360))).toBe(true);
  });
});

describe('counter rows', () => {
  it('sums each counter over CPUs exactly, as a number up to 2^53 and a bigint past it, wrapping at 2^64', () => {
    const cpus = possibleCpus();
    const fd = BpfMap.create(MAP_TYPE.PERCPU_ARRAY, 'xdplb_test', 4, LAYOUT.lb_counters.size, 8);
    fds.push(fd);
    // Row id: what each CPU counts in `packets` and `bytes`, and the sums.
    const perCpu = (first: bigint, rest: bigint) => Array.from({ length: cpus }, (_, cpu) => (cpu ? rest : first));
    const rows: Array<{ packets: bigint[]; bytes: bigint[] }> = [
      { packets: perCpu(0n, 0n), bytes: perCpu(3n, 0n) },
      { packets: perCpu(2n ** 53n - 1n - BigInt(cpus - 1) * 5n, 5n), bytes: perCpu(2n ** 32n - 1n, 2n ** 32n - 1n) },
      { packets: perCpu(2n ** 53n, 0n), bytes: perCpu(2n ** 53n - 1n, 1n) },
      { packets: perCpu(2n ** 64n - 1n, 0n), bytes: perCpu(12345678901234567890n, 7n) },
      { packets: perCpu(2n ** 64n - 1n, 1n), bytes: perCpu(2n ** 63n, 2n ** 62n) },
    ];
    const stride = Math.ceil(LAYOUT.lb_counters.size / 8) * 8;
    rows.forEach((r, id) => {
      const value = Buffer.alloc(stride * cpus);
      for (let cpu = 0; cpu < cpus; cpu++) {
        value.writeBigUInt64LE(r.packets[cpu], cpu * stride + LAYOUT.lb_counters.packets);
        value.writeBigUInt64LE(r.bytes[cpu], cpu * stride + LAYOUT.lb_counters.bytes);
      }
      fd.update(id, value);
    });
    const counters = CounterRows.read(fd, rows.length);
    const sum = (words: bigint[]) => BigInt.asUintN(64, words.reduce((a, b) => a + b, 0n));
    const shown = (n: bigint) => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);
    rows.forEach((r, id) => {
      expect([counters.value(id, 'packets'), counters.value(id, 'bytes')]).toEqual([shown(sum(r.packets)), shown(sum(r.bytes))]);
      expect(counters.row(id)).toMatchObject({ packets: sum(r.packets), bytes: sum(r.bytes), new_conns: 0n });
    });
    // A counter 2^53 - 1 is a number; one past it a bigint, exact.
    expect(counters.value(2, 'packets')).toBe(2n ** 53n);
    expect(typeof counters.value(1, 'packets')).toBe('number');
  });
});
