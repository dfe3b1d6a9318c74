// The backend's side of direct server return in a lab: a root array on the
// backend's interface (xdp-root --attach), the decapsulator in a slot
// (xdp-root --load), and its config map written through the program's own
// map, found by the id of the program the slot holds. Removed with the
// namespace.
import { BpfMap, describeProg } from '../../src/libbpf/index.js';
import { MAPS, OBJECT, PROGRAM, STATS, decodeStats, encodeConfig, type DecapConfig, type StatName } from '../../src/programs/decap/layout.js';
import { u32 } from '../../src/programs/lb/layout.js';
import { BPF, ok, xdpRoot } from './cli.js';

function decapMap(ns: string, ifname: string, slot: number, name: string): BpfMap {
  const s = JSON.parse(ok(xdpRoot(['--status', '--interface', ifname, '--json'], { netns: ns })))[ifname];
  const id = s.subprograms[slot]?.id;
  if (!id) throw new Error(`no program in slot ${slot} of ${ifname} in ${ns}`);
  for (const mapId of describeProg(id)?.mapIds ?? []) {
    const m = BpfMap.byId(mapId);
    if (m?.name === name) return m;
    m?.close();
  }
  throw new Error(`the decapsulator in slot ${slot} of ${ifname} has no map ${name}`);
}

/** Attach a root array to `ifname` in `ns` and put the decapsulator in `slot`, configured. */
export function placeDecap(ns: string, ifname: string, config: DecapConfig, slot = 0): void {
  ok(xdpRoot(['--attach', '--interface', ifname, '--mode', 'native'], { netns: ns }));
  ok(xdpRoot(['--load', '--interface', ifname, '--slot', String(slot), '--object', BPF(OBJECT), '--program', PROGRAM], { netns: ns }));
  const m = decapMap(ns, ifname, slot, MAPS.config);
  try {
    m.update(u32(0), encodeConfig(config));
  } finally {
    m.close();
  }
}

/** The decapsulator's counters, summed over CPUs. */
export function decapStats(ns: string, ifname: string, slot = 0): Record<StatName, bigint> {
  const m = decapMap(ns, ifname, slot, MAPS.stats);
  try {
    return decodeStats(m.lookupPerCpu(u32(0))!);
  } finally {
    m.close();
  }
}

export { STATS };
