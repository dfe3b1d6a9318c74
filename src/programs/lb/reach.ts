// Whether a dsr-l2 VIP can reach its backends: only the destination MAC
// changes, so every backend must be a neighbour of this network namespace,
// on a subnet it reaches without a router (a route with no gateway in
// /proc/net/route or /proc/net/ipv6_route). Otherwise the FIB answers with
// a router's MAC, and the router sends the packet, still addressed to the
// VIP, back to the balancer. A backend given a `mac` is the operator's
// word that it is a neighbour.
import { connectedPrefixes, inPrefix, type Prefix } from '../../net/addresses.js';
import { ConfigError, type LbConfig } from './config.js';
import { addrBytes, addrText, familyOf } from './layout.js';

const prefixText = (p: Prefix) => `${addrText(Buffer.concat([p.bytes, Buffer.alloc(16 - p.bytes.length)]), p.family)}/${p.length}`;

/** One line per dsr-l2 backend that is not on a connected subnet. */
export function dsrL2Unreachable(config: LbConfig, connected: Prefix[] = connectedPrefixes()): string[] {
  const out: string[] = [];
  config.vips.forEach((v, i) => {
    if (v.forwarding !== 'dsr-l2') return;
    v.backends.forEach((b, j) => {
      if (b.mac) return;
      const family = familyOf(b.address);
      const bytes = addrBytes(b.address).subarray(0, family === 4 ? 4 : 16);
      if (connected.some((p) => inPrefix(bytes, p))) return;
      const known = connected.filter((p) => p.family === family).map(prefixText);
      out.push(
        `vips[${i}].backends[${j}].address: forwarding "dsr-l2" only changes the destination MAC, so a backend must be on a ` +
          `subnet this network namespace reaches without a router (${known.length ? known.join(', ') : `none of IPv${family}`}), ` +
          `got '${b.address}' (give its "mac" if it is a neighbour all the same)`,
      );
    });
  });
  return out;
}

/** Refuse a config with a dsr-l2 backend that is no neighbour. */
export function checkDsrL2(config: LbConfig, connected?: Prefix[]): void {
  const [first] = dsrL2Unreachable(config, connected);
  if (first) throw new ConfigError(first);
}
