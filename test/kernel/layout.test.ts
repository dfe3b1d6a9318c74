// Struct layouts shared with C, checked against BTF: the project's own
// objects for the counters, the running kernel's for the UAPI info structs
// the binding reads by offset. bpftool is the independent witness here.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { COUNTERS_LAYOUT } from '../../src/root/stats.js';
import { PROG_INFO } from '../../src/libbpf/fd.js';
import { BPF } from '../helpers/cli.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: Array<{ name: string; type_id: number; bits_offset: number }>;
}

function btf(file: string): Map<number, BtfType> {
  const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', file], { maxBuffer: 64 << 20, encoding: 'utf8' }));
  return new Map((dump.types as BtfType[]).map((t) => [t.id, t]));
}

function struct(types: Map<number, BtfType>, name: string): BtfType {
  const t = [...types.values()].find((x) => x.kind === 'STRUCT' && x.name === name);
  if (!t) throw new Error(`no struct ${name} in BTF`);
  return t;
}

describe('layouts against BTF', () => {
  for (const object of ['xdp_root.o', 'xdp_fixtures.o']) {
    it(`struct xdplb_counters in ${object} matches src/root/stats.ts`, () => {
      const types = btf(BPF(object));
      const s = struct(types, 'xdplb_counters');
      expect(s.size).toBe(COUNTERS_LAYOUT.size);
      const members = Object.fromEntries(s.members!.map((m) => [m.name, m]));
      expect(Object.keys(members)).toEqual(['packets', 'bytes']);
      expect(members.packets.bits_offset / 8).toBe(COUNTERS_LAYOUT.packets);
      expect(members.bytes.bits_offset / 8).toBe(COUNTERS_LAYOUT.bytes);
      for (const m of s.members!) {
        const arr = types.get(m.type_id)!;
        expect(arr.kind).toBe('ARRAY');
        expect(arr.nr_elems).toBe(COUNTERS_LAYOUT.columns);
      }
    });
  }

  it('struct bpf_prog_info offsets match the running kernel', () => {
    const s = struct(btf('/sys/kernel/btf/vmlinux'), 'bpf_prog_info');
    const off = Object.fromEntries(s.members!.map((m) => [m.name, m.bits_offset / 8]));
    for (const [field, offset] of Object.entries(PROG_INFO)) {
      if (field === 'size') expect(s.size).toBeGreaterThanOrEqual(offset);
      else expect([field, off[field]]).toEqual([field, offset]);
    }
  });
});
