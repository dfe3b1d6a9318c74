// The decapsulator as a service (xdp-decap run): in its slot on the root's
// interfaces with its section's tunnels. An address the section leaves out
// is the interface's own, read again at every apply and reconciliation, so
// the decapsulator follows an address that changes.
import type { ServiceHandler } from '../contract.js';
import { findProgram, placeProgram, removeProgram, withRoot } from '../../root/place.js';
import type { Iface } from '../../root/pins.js';
import { Undo } from '../../undo.js';
import { describeTunnels, readTunnels, sameTunnels, tunnelsFor, withDecapMaps, writeTunnels, type Tunnels } from './config.js';
import type { DecapSettings } from './settings.js';
import { DECAP } from './spec.js';

const wanted = (iface: Iface, s: DecapSettings): Tunnels => tunnelsFor(iface, { ...s.tunnels, gue_port: s.gue_port });

export const DECAP_SERVICE: ServiceHandler<DecapSettings> = {
  apply(ifaces, slot, s) {
    // Every interface's tunnels first: one without an address changes nothing.
    const want = ifaces.map((i) => wanted(i, s));
    return Undo.run((undo) => {
      const placed = placeProgram(DECAP, ifaces, slot, undo);
      const lines: string[] = [];
      placed.forEach((p, i) => withDecapMaps(p.iface, (maps) => {
        const held = readTunnels(maps);
        if (!p.changed && sameTunnels(held, want[i])) return;
        writeTunnels(maps, want[i]);
        if (!p.changed) undo.push(() => withDecapMaps(p.iface, (m) => writeTunnels(m, held)));
        lines.push(`${p.iface.name}: xdp_decap in slot ${p.slot}, ${describeTunnels(want[i])}`);
      }));
      return lines;
    });
  },
  detach(ifaces) {
    removeProgram(DECAP, ifaces);
  },
  check(ifaces, slot, s) {
    return ifaces.flatMap((iface) => {
      const at = withRoot(iface, (root) => findProgram(root, DECAP));
      if (!at || at.slot !== slot) return [`${iface.name}: xdp_decap not in slot ${slot}`];
      let want: Tunnels;
      try {
        want = wanted(iface, s);
      } catch (err) {
        return [(err as Error).message];
      }
      return sameTunnels(withDecapMaps(iface, readTunnels), want) ? [] : [`${iface.name}: decapsulator settings differ`];
    });
  },
  status(ifaces) {
    return ifaces.map((iface) => `${iface.name}: ${describeTunnels(withDecapMaps(iface, readTunnels))}`).join('; ');
  },
};
