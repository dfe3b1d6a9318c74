// The decapsulator's section of the service config (/etc/xdplb/xdplb.json):
// { "tunnel_ipv4": "10.0.0.2", "tunnel_ipv6": null, "gue_port": 6080 }
// An absent address is the interface's own (read again at every apply, so
// it follows the interface); null turns the family off; gue_port 0, GUE.
import type { SectionReader } from '../contract.js';
import { DEFAULT_GUE_PORT, guePort, tunnelAddress, type TunnelRequest } from './config.js';

export interface DecapSettings {
  /** Absent keys: the interface's own addresses. */
  tunnels: Omit<TunnelRequest, 'gue_port'>;
  gue_port: number;
}

const shown = (v: unknown) => JSON.stringify(v) ?? String(v);

function key<T>(path: string, v: unknown, parse: (v: unknown) => T): T {
  try {
    return parse(v);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}, got ${shown(v)}`);
  }
}

export const DECAP_SETTINGS: SectionReader<DecapSettings> = {
  keys: ['tunnel_ipv4', 'tunnel_ipv6', 'gue_port'],
  parse(v): DecapSettings {
    const tunnels: DecapSettings['tunnels'] = {};
    const addr = (family: 4 | 6) => (x: unknown) => tunnelAddress(x, family, null);
    if (v.tunnel_ipv4 !== undefined) tunnels.tunnel_ipv4 = key('tunnel_ipv4', v.tunnel_ipv4, addr(4));
    if (v.tunnel_ipv6 !== undefined) tunnels.tunnel_ipv6 = key('tunnel_ipv6', v.tunnel_ipv6, addr(6));
    const port = v.gue_port === undefined ? DEFAULT_GUE_PORT : key('gue_port', v.gue_port, (x) => {
      if (typeof x !== 'number') throw new Error('expected a UDP port from 1 to 65535, or 0 for no GUE');
      return guePort(x);
    });
    return { tunnels, gue_port: port };
  },
};
