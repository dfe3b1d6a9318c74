// The decapsulator as a subprogram: its object, default slot, maps, and
// the structs the layout test checks against its BTF.
import type { ProgramSpec } from '../../root/place.js';
import { CONFIG_LAYOUT, MAPS, OBJECT, PROGRAM, STATS, STATS_SIZE } from './layout.js';

export const DECAP: ProgramSpec = {
  name: 'decap',
  object: OBJECT,
  program: PROGRAM,
  // Before the balancer's 7: a host that balances and is a backend too
  // takes the outer header off first.
  defaultSlot: 6,
  interfaceMaps: Object.values(MAPS),
};

export const LAYOUTS = {
  decap_config: CONFIG_LAYOUT,
  decap_stats: { size: STATS_SIZE, ...Object.fromEntries(STATS.map((n, i) => [n, i * 8])) },
};
