// Every struct shared with C, checked against BTF in one place: each
// subprogram's (its descriptor's `layouts`, in its object), the slot
// protocol's (in the root and in a slot program), and the UAPI info
// structs the binding reads by offset (in the running kernel). bpftool is
// the independent witness.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROG_INFO } from '../../src/libbpf/prog.js';
import { COUNTERS_LAYOUT } from '../../src/root/stats.js';
import { SUBPROGRAMS } from '../../src/programs/index.js';
import { SAMPLE_COUNTERS, SAMPLE_HEADER, SAMPLING } from '../../src/programs/sampler/layout.js';
import { BPF } from '../helpers/cli.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  members?: Array<{ name: string; bits_offset: number }>;
}

const dumps = new Map<string, BtfType[]>();
function types(file: string): BtfType[] {
  if (!dumps.has(file)) {
    const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', file], { maxBuffer: 64 << 20, encoding: 'utf8' }));
    dumps.set(file, dump.types);
  }
  return dumps.get(file)!;
}

/** Size and byte offset of every member of a struct, as BTF has them. */
function btfLayout(file: string, name: string): Record<string, number> {
  const s = types(file).find((t) => t.kind === 'STRUCT' && t.name === name);
  if (!s) throw new Error(`no struct ${name} in ${file}`);
  return { size: s.size!, ...Object.fromEntries(s.members!.map((m) => [m.name, m.bits_offset / 8])) };
}

/** Ours must name fields BTF has, at BTF's offsets, and the same size. */
function expectSame(file: string, name: string, ours: Record<string, number>): void {
  const btf = btfLayout(file, name);
  for (const [field, offset] of Object.entries(ours)) expect([name, field, btf[field]]).toEqual([name, field, offset]);
}

const SLOT_PROTOCOL = {
  xdplb_counters: { size: COUNTERS_LAYOUT.size, packets: COUNTERS_LAYOUT.packets, bytes: COUNTERS_LAYOUT.bytes },
  xdplb_sample: SAMPLE_HEADER,
  xdplb_sampling: SAMPLING,
  xdplb_sample_counters: SAMPLE_COUNTERS,
};

describe('struct layouts against BTF', () => {
  for (const sub of SUBPROGRAMS) {
    for (const [name, layout] of Object.entries(sub.layouts)) {
      it(`${sub.name}: struct ${name} in ${sub.object}`, () => expectSame(BPF(sub.object), name, layout));
    }
  }
  for (const object of ['xdp_root.o', 'xdp_fixtures.o']) {
    for (const [name, layout] of Object.entries(SLOT_PROTOCOL)) {
      // The root takes no samples: its BTF has no sample record.
      if (object === 'xdp_root.o' && name === 'xdplb_sample') continue;
      it(`slot protocol: struct ${name} in ${object}`, () => expectSame(BPF(object), name, layout));
    }
  }
  it('struct bpf_prog_info offsets match the running kernel', () => {
    const { size, ...fields } = PROG_INFO;
    const btf = btfLayout('/sys/kernel/btf/vmlinux', 'bpf_prog_info');
    expect(btf.size).toBeGreaterThanOrEqual(size);
    for (const [field, offset] of Object.entries(fields)) expect([field, btf[field]]).toEqual([field, offset]);
  });
});
