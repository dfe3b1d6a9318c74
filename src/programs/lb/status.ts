// What the balancer is doing, read back from the kernel: where it runs, its
// NAT settings, how full its tables are, and every VIP and backend with
// their counters (per-CPU values summed).
import { XdplbError } from '../../errors.js';
import { resolveIface } from '../../root/pins.js';
import { lbInterfaces, openLbMaps, closeLbMaps } from './pins.js';
import { readState, tableFill, vipStatus, type VipStatus } from './state.js';
import type { NatConfig, Timeouts } from './layout.js';

export type LbStatus =
  | { loaded: false; interfaces: Record<string, never> }
  | {
      loaded: true;
      /** Where it runs; none: the state is pinned but attached nowhere
       *  (an orphan, kept for the next attach; --purge removes it). */
      interfaces: Record<string, { slot: number; id: number }>;
      orphan: boolean;
      nat: NatConfig;
      timeouts: Timeouts;
      connections: number;
      connections_max: number;
      nat_ports: number;
      nat_ports_max: number;
      vips: VipStatus[];
    };

/** The namespace's balancer; with `ifnames`, each must exist here and run
 *  the balancer. */
export function lbStatus(ifnames?: string[]): LbStatus {
  const all = lbInterfaces();
  for (const name of ifnames ?? []) {
    resolveIface(name);
    if (!all[name]) throw new XdplbError(`xdp-lb is not attached to ${name}: run xdp-lb --attach --interface ${name} first`);
  }
  const maps = openLbMaps();
  if (!maps) return { loaded: false, interfaces: {} };
  try {
    const state = readState(maps);
    return {
      loaded: true,
      interfaces: ifnames ? Object.fromEntries(ifnames.map((n) => [n, all[n]])) : all,
      orphan: !Object.keys(all).length,
      nat: state.config.nat,
      timeouts: state.config.timeouts,
      ...tableFill(maps),
      vips: vipStatus(maps, state),
    };
  } finally {
    closeLbMaps(maps);
  }
}
