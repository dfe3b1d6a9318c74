// The load balancer's map structs against the object's BTF (bpftool is the
// witness): every size and offset src/programs/lb/layout.ts uses.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { closeFd, mapInfo } from '../../src/libbpf/index.js';
import { RootArray } from '../../src/root/array.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { LAYOUT, MAP_SIZES } from '../../src/programs/lb/layout.js';
import { closeFds, lbFdsOf } from '../helpers/lb.js';
import { BPF } from '../helpers/cli.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  members?: Array<{ name: string; bits_offset: number }>;
}

const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', BPF('xdp_lb.o')], { maxBuffer: 64 << 20, encoding: 'utf8' }));
const types = dump.types as BtfType[];

describe('lb struct layouts against BTF', () => {
  for (const [name, layout] of Object.entries(LAYOUT)) {
    it(`struct ${name}`, () => {
      const s = types.find((t) => t.kind === 'STRUCT' && t.name === name);
      expect(s, `no struct ${name} in BTF`).toBeDefined();
      expect(s!.size).toBe(layout.size);
      const btf = Object.fromEntries(s!.members!.map((m) => [m.name, m.bits_offset / 8]));
      const ours = Object.fromEntries(Object.entries(layout).filter(([k]) => k !== 'size'));
      for (const [field, offset] of Object.entries(ours)) expect([field, btf[field]]).toEqual([field, offset]);
    });
  }
});

describe('lb maps as loaded', () => {
  it('have the key and value sizes and flags MAP_SIZES expects of pinned state', () => {
    const root = RootArray.load();
    const fd = loadSlotProgram(root, { object: BPF('xdp_lb.o'), program: 'xdp_lb', slot: 7 });
    const fds = lbFdsOf(fd);
    try {
      for (const [name, sizes] of Object.entries(MAP_SIZES)) {
        const info = mapInfo(fds[name as keyof typeof MAP_SIZES]);
        expect([name, info.keySize, info.valueSize, info.flags]).toEqual([name, ...sizes]);
      }
    } finally {
      closeFds(fds);
      closeFd(fd);
      root.close();
    }
  });
});
