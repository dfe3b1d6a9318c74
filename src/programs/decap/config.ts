// The decapsulator's configuration as operators give it (tunnel addresses,
// the GUE port), checked before any map is touched; its defaults, the
// interface's own addresses, read from the kernel (no tool run); and what
// its pinned maps hold.
import { isIP } from 'node:net';
import type { BpfMap } from '../../libbpf/index.js';
import { UsageError, XdplbError } from '../../errors.js';
import { interfaceAddresses } from '../../net/addresses.js';
import { openPinnedMaps, interfaceRecovery } from '../../root/place.js';
import { programDir, type Iface } from '../../root/pins.js';
import { GUE_PORT_DEFAULT, addrBytes, addrText, u32 } from '../lb/layout.js';
import { MAPS, decodeConfig, decodeStats, encodeConfig, type StatName } from './layout.js';
import { DECAP } from './spec.js';

/** What the decapsulator takes packets for: a family without an address
 *  (null) is not decapsulated, nor GUE with port 0. */
export interface Tunnels {
  tunnel_ipv4: string | null;
  tunnel_ipv6: string | null;
  gue_port: number;
}

/** What was asked for: absent keys are the interface's own addresses and
 *  GUE on 6080 (a first attach), or what the map holds (a later one). */
export type TunnelRequest = Partial<Tunnels>;

export const DEFAULT_GUE_PORT = GUE_PORT_DEFAULT;

/** A tunnel address: unicast, of the family, in canonical form; `off`
 *  (`none` on the command line, null in a config file) turns the family off. */
export function tunnelAddress(value: unknown, family: 4 | 6, off: 'none' | null = 'none'): string | null {
  if (value === off) return null;
  const ok = typeof value === 'string' && isIP(value) === family;
  const b = ok ? addrBytes(value as string) : null;
  const unicast = b && (family === 4
    ? b[0] !== 0 && b[0] < 224 && b[0] !== 127
    : !b.every((x, i) => (i < 15 ? x === 0 : x <= 1)) && b[0] !== 0xff);
  if (!unicast) throw new Error(`expected a unicast IPv${family} address of this host, or ${off}`);
  return family === 4 ? (value as string) : addrText(b!, 6);
}

export function guePort(value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error('expected a UDP port from 1 to 65535, or 0 for no GUE');
  }
  return n;
}

/** The flag's value checked, or a one-line usage error naming it. */
export function flagValue<T>(flag: string, text: string, parse: (v: string) => T): T {
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(`invalid --${flag} '${text}': ${(err as Error).message}`);
  }
}

/** The request over `base`: the map's settings, or for a newly placed
 *  decapsulator the interface's own addresses and the default port. */
export function tunnelsFor(iface: Pick<Iface, 'name'>, request: TunnelRequest, base?: Tunnels): Tunnels {
  let from = base;
  if (!from) {
    const own = request.tunnel_ipv4 !== undefined && request.tunnel_ipv6 !== undefined ? {} : interfaceAddresses(iface.name);
    from = {
      tunnel_ipv4: own.ipv4 ? addrText(own.ipv4, 4) : null,
      tunnel_ipv6: own.ipv6 ? addrText(own.ipv6, 6) : null,
      gue_port: DEFAULT_GUE_PORT,
    };
  }
  const t: Tunnels = { ...from, ...request };
  if (t.tunnel_ipv4 === null && t.tunnel_ipv6 === null) {
    throw new XdplbError(
      `${iface.name} has no address to take tunnel packets on (no IPv4 address, no global IPv6 address): ` +
        'give --tunnel-ipv4 or --tunnel-ipv6',
    );
  }
  return t;
}

export function encodeTunnels(t: Tunnels): Buffer {
  return encodeConfig({
    ...(t.tunnel_ipv4 ? { address_ipv4: t.tunnel_ipv4 } : {}),
    ...(t.tunnel_ipv6 ? { address_ipv6: t.tunnel_ipv6 } : {}),
    gue_port: t.gue_port,
  });
}

export function decodeTunnels(b: Buffer): Tunnels {
  const c = decodeConfig(b);
  return { tunnel_ipv4: c.address_ipv4 ?? null, tunnel_ipv6: c.address_ipv6 ?? null, gue_port: c.gue_port ?? 0 };
}

export const sameTunnels = (a: Tunnels, b: Tunnels) =>
  a.tunnel_ipv4 === b.tunnel_ipv4 && a.tunnel_ipv6 === b.tunnel_ipv6 && a.gue_port === b.gue_port;

export function describeTunnels(t: Tunnels): string {
  const addrs = [t.tunnel_ipv4, t.tunnel_ipv6].filter(Boolean).join(', ');
  return `tunnel ${addrs}, GUE ${t.gue_port ? `port ${t.gue_port}` : 'off'}`;
}

export interface DecapMaps {
  config: BpfMap;
  stats: BpfMap;
}

/** The interface's decapsulator maps (pinned under its <if>/decap/). */
export function withDecapMaps<T>(iface: Iface, fn: (maps: DecapMaps) => T): T {
  const maps = openPinnedMaps(
    programDir(iface, DECAP.name), { config: MAPS.config, stats: MAPS.stats }, interfaceRecovery(DECAP, iface),
    `xdp-decap is not attached to ${iface.name}: run xdp-decap --attach --interface ${iface.name} first`,
  );
  try {
    return fn(maps);
  } finally {
    maps.config.close();
    maps.stats.close();
  }
}

export function readTunnels(maps: DecapMaps): Tunnels {
  return decodeTunnels(maps.config.lookup(u32(0))!);
}

/** One map update: a packet sees the old settings or the new ones. */
export function writeTunnels(maps: DecapMaps, t: Tunnels): void {
  maps.config.update(u32(0), encodeTunnels(t));
}

export function readStats(maps: DecapMaps): Record<StatName, bigint> {
  return decodeStats(maps.stats.lookupPerCpu(u32(0))!);
}
