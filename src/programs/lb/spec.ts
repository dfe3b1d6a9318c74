// The load balancer as a subprogram: its object, default slot and maps.
import type { SubprogramSpec } from '../../root/subprogram.js';

/** Everything but nothing per interface: the VIPs, backends, Maglev tables,
 *  connection and NAT tables and the counters serve every interface the
 *  balancer runs on, so a flow keeps its backend and NAT port whichever
 *  interface its packets arrive on. */
export const LB_MAPS = [
  'lb_vips', 'lb_maglev', 'lb_backends', 'lb_config', 'lb_conns', 'lb_nat', 'lb_l2_cache', 'lb_vip_stats', 'lb_be_stats',
] as const;
export type LbMapName = (typeof LB_MAPS)[number];

export const LB_SPEC: SubprogramSpec = {
  name: 'lb',
  object: 'xdp_lb.o',
  program: 'xdp_lb',
  defaultSlot: 7,
  interfaceMaps: [],
  sharedMaps: [...LB_MAPS],
};
