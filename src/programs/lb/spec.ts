// The load balancer as a subprogram: its object, default slot and maps.
import type { ProgramSpec } from '../../root/place.js';

/** All of the balancer's maps are shared by the interfaces it runs on (none
 *  is per interface): a flow keeps its backend and NAT port whichever
 *  interface its packets arrive on, and one config serves them all. */
export const LB_MAPS = [
  'lb_vips', 'lb_vip_bits', 'lb_vip_ids', 'lb_vip_fwd', 'lb_vip_index', 'lb_maglev', 'lb_backends', 'lb_config', 'lb_conns', 'lb_nat', 'lb_frags', 'lb_l2_cache', 'lb_vip_stats', 'lb_be_stats',
] as const;
export type LbMapName = (typeof LB_MAPS)[number];

export const LB_SPEC: ProgramSpec = {
  name: 'lb',
  object: 'xdp_lb.o',
  program: 'xdp_lb',
  defaultSlot: 7,
  interfaceMaps: [],
  sharedMaps: [...LB_MAPS],
};
