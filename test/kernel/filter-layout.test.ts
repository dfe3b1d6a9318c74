// The filter's map values as src/programs/filter/layout.ts writes and reads
// them, checked against the object's BTF (bpftool as the witness).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_LAYOUT, KEY4_LAYOUT, KEY6_LAYOUT, PREFIX_LAYOUT, PTB_WINDOW_LAYOUT, STATS, STATS_SIZE, TAG_SIZE,
} from '../../src/programs/filter/layout.js';
import { BPF } from '../helpers/cli.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  nr_elems?: number;
  members?: Array<{ name: string; type_id: number; bits_offset: number }>;
}

const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', BPF('xdp_filter.o')], { encoding: 'utf8', maxBuffer: 64 << 20 }));
const types = new Map<number, BtfType>((dump.types as BtfType[]).map((t) => [t.id, t]));

/** Size and byte offset of every member of a struct. */
function layout(name: string): { size: number; offsets: Record<string, number> } {
  const s = [...types.values()].find((t) => t.kind === 'STRUCT' && t.name === name);
  if (!s) throw new Error(`no struct ${name} in the filter's BTF`);
  return { size: s.size!, offsets: Object.fromEntries(s.members!.map((m) => [m.name, m.bits_offset / 8])) };
}

function strip<T extends Record<string, number>>(l: T): Record<string, number> {
  return Object.fromEntries(Object.entries(l).filter(([k]) => k !== 'size'));
}

describe('filter layouts against BTF', () => {
  it('struct filter_config', () => {
    expect(layout('filter_config')).toEqual({ size: CONFIG_LAYOUT.size, offsets: strip(CONFIG_LAYOUT) });
  });

  it('struct filter_stats: the counters, in order', () => {
    expect(layout('filter_stats')).toEqual({ size: STATS_SIZE, offsets: Object.fromEntries(STATS.map((s, i) => [s, i * 8])) });
  });

  it('LPM keys', () => {
    expect(layout('filter_key4')).toEqual({ size: KEY4_LAYOUT.size, offsets: strip(KEY4_LAYOUT) });
    expect(layout('filter_key6')).toEqual({ size: KEY6_LAYOUT.size, offsets: strip(KEY6_LAYOUT) });
  });

  it('struct filter_prefix, with a 64-byte tag', () => {
    expect(layout('filter_prefix')).toEqual({ size: PREFIX_LAYOUT.size, offsets: strip(PREFIX_LAYOUT) });
    const s = [...types.values()].find((t) => t.kind === 'STRUCT' && t.name === 'filter_prefix')!;
    const tag = types.get(s.members!.find((m) => m.name === 'tag')!.type_id)!;
    expect([tag.kind, tag.nr_elems]).toEqual(['ARRAY', TAG_SIZE]);
  });

  it('struct filter_ptb_window', () => {
    const l = layout('filter_ptb_window');
    expect(l.size).toBe(PTB_WINDOW_LAYOUT.size);
    expect(l.offsets.second).toBe(PTB_WINDOW_LAYOUT.second);
    expect(l.offsets.sent).toBe(PTB_WINDOW_LAYOUT.sent);
  });
});
