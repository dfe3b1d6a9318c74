// What the balancer is doing, read back from the kernel: where it runs, its
// NAT settings, how full its tables are, and every VIP and backend with
// their counters (per-CPU values summed).
import { lbInterfaces, openLbMaps, closeLbMaps } from './pins.js';
import { readState, tableFill, vipStatus, type VipStatus } from './state.js';
import type { NatConfig, Timeouts } from './layout.js';

export type LbStatus =
  | { loaded: false; interfaces: Record<string, never> }
  | {
      loaded: true;
      interfaces: Record<string, { slot: number; id: number }>;
      nat: NatConfig;
      timeouts: Timeouts;
      connections: number;
      connections_max: number;
      nat_ports: number;
      nat_ports_max: number;
      vips: VipStatus[];
    };

export function lbStatus(ifnames?: string[]): LbStatus {
  const fds = openLbMaps();
  if (!fds) return { loaded: false, interfaces: {} };
  try {
    const state = readState(fds);
    return {
      loaded: true,
      interfaces: lbInterfaces(ifnames),
      nat: state.config.nat,
      timeouts: state.config.timeouts,
      ...tableFill(fds),
      vips: vipStatus(fds, state),
    };
  } finally {
    closeLbMaps(fds);
  }
}
