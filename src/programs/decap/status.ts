// The decapsulator's status per interface, read back from its pinned maps:
// where it runs, what it takes packets for, and its counters (whatever
// STATS names, summed over CPUs).
import { resolveIface } from '../../root/pins.js';
import { findProgram, programIfaces, withRoot } from '../../root/place.js';
import { XdplbError } from '../../errors.js';
import { table } from '../../format.js';
import { rateAt, withRate, type RateTree } from '../../rates.js';
import { STATS, type StatName } from './layout.js';
import { readStats, readTunnels, withDecapMaps, type Tunnels } from './config.js';
import { DECAP } from './spec.js';

export interface DecapStatus {
  slot: number;
  id: number;
  configuration: Tunnels;
  stats: Record<StatName, bigint>;
}

/** The named interfaces (each must run the decapsulator), or every
 *  interface of this namespace running it. */
export function decapStatus(ifnames?: string[]): Record<string, DecapStatus> {
  const found = ifnames
    ? ifnames.map((name) => {
        const iface = resolveIface(name);
        const at = withRoot(iface, (root) => findProgram(root, DECAP));
        if (!at) throw new XdplbError(`xdp-decap is not attached to ${name}: run xdp-decap --attach --interface ${name} first`);
        return { iface, ...at };
      })
    : programIfaces(DECAP);
  return Object.fromEntries(found.map(({ iface, slot, id }) => [
    iface.name,
    withDecapMaps(iface, (maps) => ({ slot, id, configuration: readTunnels(maps), stats: readStats(maps) })),
  ]));
}

const heading = (stat: string) => stat.replace(/_/g, ' ').toUpperCase();

export function formatStatus(all: Record<string, DecapStatus>, rates?: RateTree): string {
  const entries = Object.entries(all);
  if (!entries.length) return 'xdp-decap is not attached to any interface in this network namespace.';
  const rows = entries.map(([ifname, s]) => [
    ifname, s.slot, s.configuration.tunnel_ipv4 ?? '-', s.configuration.tunnel_ipv6 ?? '-', s.configuration.gue_port || 'off',
    ...STATS.map((k) => {
      const bytes = k === 'bytes' || k.endsWith('_bytes');
      const key = k === 'bytes' ? 'bits' : bytes ? k.replace(/_bytes$/, '_bits') : k;
      return withRate(s.stats[k], rateAt(rates, ifname, 'stats', key), bytes ? 'bit/s' : 'pps');
    }),
  ]);
  return table(['INTERFACE', 'SLOT', 'TUNNEL IPV4', 'TUNNEL IPV6', 'GUE PORT', ...STATS.map(heading)], rows);
}
