// Weighted Maglev: balance, weights, minimal disruption, determinism.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TABLE_SIZE, NO_BACKEND, fnv1a32, isPrime, maglevTable, type MaglevBackend } from '../../src/programs/lb/maglev.js';

const backends = (n: number, weight = (_: number) => 1): MaglevBackend[] =>
  Array.from({ length: n }, (_, i) => ({ id: i, key: `10.0.${i >> 8}.${i & 255}:8000`, weight: weight(i) }));

function shares(table: Uint32Array): Map<number, number> {
  const m = new Map<number, number>();
  for (const id of table) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

describe('maglev', () => {
  it('uses FNV-1a as published (test vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('default size is a prime', () => {
    expect(isPrime(DEFAULT_TABLE_SIZE)).toBe(true);
    expect(() => maglevTable(backends(2), 65536)).toThrow(/not a prime/);
  });

  for (const n of [2, 3, 7, 10, 100]) {
    it(`balances ${n} equal backends within 1% on a 65537 table`, () => {
      const table = maglevTable(backends(n));
      const even = DEFAULT_TABLE_SIZE / n;
      const s = shares(table);
      expect(s.size).toBe(n);
      for (const count of s.values()) expect(Math.abs(count - even) / even).toBeLessThanOrEqual(0.01);
    });
  }

  it('gives shares proportional to weights', () => {
    const weights = [1, 2, 3, 4];
    const table = maglevTable(backends(4, (i) => weights[i]));
    const s = shares(table);
    const total = weights.reduce((a, b) => a + b, 0);
    weights.forEach((w, i) => {
      const expected = (DEFAULT_TABLE_SIZE * w) / total;
      expect(Math.abs(s.get(i)! - expected) / expected).toBeLessThanOrEqual(0.01);
    });
  });

  it('leaves weight-0 backends out, and fills NO_BACKEND when all are 0', () => {
    const s = shares(maglevTable(backends(3, (i) => (i === 1 ? 0 : 1))));
    expect([...s.keys()].sort()).toEqual([0, 2]);
    expect([...shares(maglevTable(backends(3, () => 0))).keys()]).toEqual([NO_BACKEND]);
  });

  it('does not depend on the order of the list', () => {
    const list = backends(5);
    expect(maglevTable([...list].reverse())).toEqual(maglevTable(list));
  });

  it('moves few entries when a backend is removed: only the removed one\'s and a little more', () => {
    const before = maglevTable(backends(10));
    const after = maglevTable(backends(10).filter((b) => b.id !== 4));
    let moved = 0;
    let movedOther = 0;
    for (let i = 0; i < before.length; i++) {
      if (before[i] !== after[i]) {
        moved++;
        if (before[i] !== 4) movedOther++;
      }
    }
    // Every entry of backend 4 must move; Maglev moves only a few others.
    expect(moved - movedOther).toBe(shares(before).get(4));
    expect(movedOther / before.length).toBeLessThan(0.02);
  });

  it('moves about 1/(n+1) of the entries when a backend is added', () => {
    const before = maglevTable(backends(10));
    const after = maglevTable(backends(11));
    let moved = 0;
    for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++;
    const ideal = before.length / 11;
    expect(moved).toBeGreaterThanOrEqual(shares(after).get(10)!);
    expect(moved / ideal).toBeLessThan(1.2);
  });

  it('is the same table on every run and machine (hash of the table is a constant)', () => {
    const table = maglevTable(backends(3, (i) => i + 1));
    const bytes = Buffer.alloc(table.length * 4);
    table.forEach((v, i) => bytes.writeUInt32LE(v, i * 4));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe('f059fbdeb5fca3056a77c5313567b8ca0ab3f29afe571687fcadbd88477fc7bf');
  });

  // Tables built by the first implementation: a faster fill must not move
  // a single entry (balancers of different versions must agree).
  const sha = (t: Uint32Array) => createHash('sha256').update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength)).digest('hex');
  it('builds the same tables as ever for many weighted backends, weight 0 included, and for any size', () => {
    expect(sha(maglevTable(backends(100, (i) => (i * 7) % 11)))).toBe('cdfb5071cb1fecc3de2f5054a6210563a81457d03888dd78528a2d73eee05443');
    expect(sha(maglevTable(backends(100, (i) => (i === 3 ? 65535 : i % 3 ? 1 : 200)), 1048573))).toBe(
      'e4cf67eca48b212705ef207bd42b6a784502e91527c20822b0716e049e78e645',
    );
    expect(sha(maglevTable(backends(10, (i) => i), 7))).toBe('cc758afe6f27ae93c343b50f4d4a7c0ab3f8724ee17c817a8a0693a2905bf705');
  });
});
