// The sampler's layouts shared with C (src/programs/sampler/layout.ts),
// checked against the objects' BTF with bpftool as the witness.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { SAMPLE_COUNTERS, SAMPLE_HEADER, SAMPLER_CONFIG, SAMPLING } from '../../src/programs/sampler/layout.js';
import { BPF } from '../helpers/cli.js';

interface BtfType {
  kind: string;
  name: string;
  size?: number;
  members?: Array<{ name: string; bits_offset: number }>;
}

function layoutOf(object: string, name: string): Record<string, number> {
  const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', BPF(object)], { maxBuffer: 64 << 20, encoding: 'utf8' }));
  const s = (dump.types as BtfType[]).find((t) => t.kind === 'STRUCT' && t.name === name);
  if (!s) throw new Error(`no struct ${name} in ${object}`);
  return {
    ...Object.fromEntries(s.members!.filter((m) => m.name !== 'pad').map((m) => [m.name, m.bits_offset / 8])),
    size: s.size!,
  };
}

describe('sampler layouts against BTF', () => {
  for (const object of ['xdp_sampler.o', 'xdp_fixtures.o']) {
    it(`struct xdplb_sample in ${object}`, () => {
      expect(layoutOf(object, 'xdplb_sample')).toEqual(SAMPLE_HEADER);
    });
  }
  for (const object of ['xdp_sampler.o', 'xdp_root.o']) {
    it(`struct xdplb_sampling and xdplb_sample_counters in ${object}`, () => {
      expect(layoutOf(object, 'xdplb_sampling')).toEqual(SAMPLING);
      expect(layoutOf(object, 'xdplb_sample_counters')).toEqual(SAMPLE_COUNTERS);
    });
  }
  it('struct xdplb_sampler_config in xdp_sampler.o', () => {
    expect(layoutOf('xdp_sampler.o', 'xdplb_sampler_config')).toEqual(SAMPLER_CONFIG);
  });
});
