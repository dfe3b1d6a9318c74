// The load balancer as a service (xdp-lb run): in its slot on the root's
// interfaces, with the section's VIPs applied (only the difference written,
// under the state's lock), and checked on every reconciliation: whatever
// an apply would write is something the kernel does not hold. Stopping
// takes it out of the slots; its state stays for the next start.
import type { ServiceHandler } from '../contract.js';
import { findProgram, placeProgram, removeProgram, withRoot } from '../../root/place.js';
import type { LbConfig } from './config.js';
import { LB_SPEC } from './spec.js';
import { withLbState } from './pins.js';
import { applyConfig, planFor } from './apply.js';
import { readState } from './state.js';
import { lbStatus } from './status.js';
import { chainWarnings, describeChanges } from './changes.js';
import { vipWarnings } from './local.js';
import { checkDsrL2 } from './reach.js';
import { ChainExpiry } from './expiry.js';

const expiry = new ChainExpiry();

export const LB_SERVICE: ServiceHandler<LbConfig> = {
  apply(ifaces, slot, config, log) {
    checkDsrL2(config);
    const placed = placeProgram(LB_SPEC, ifaces, slot);
    const lines = placed.filter((p) => p.changed).map((p) => `${p.iface.name}: xdp_lb in slot ${p.slot}`);
    const { before, result } = withLbState((maps) => {
      const have = readState(maps);
      return { before: have.config, result: applyConfig(maps, config, have) };
    });
    lines.push(...describeChanges(before, config).map((l) => `lb: ${l}`));
    for (const line of vipWarnings(config)) log(`lb: ${line}`, 'warning');
    for (const line of chainWarnings(result)) log(`lb: ${line}`, 'warning');
    expiry.run(log);
    return lines;
  },
  detach(ifaces) {
    removeProgram(LB_SPEC, ifaces);
  },
  check(ifaces, slot, config) {
    const wrong = ifaces.flatMap((iface) => withRoot(iface, (root) => {
      const at = findProgram(root, LB_SPEC);
      return at && at.slot === slot ? [] : [`${iface.name}: xdp_lb not in slot ${slot}`];
    }));
    // Under the lock: an apply under way is not taken for a difference.
    const writes = withLbState((maps) => planFor(maps, readState(maps), config).steps.map((s) => s.what));
    if (writes.length) wrong.push(`lb: the kernel does not hold the configured VIPs (to write: ${writes.join(', ')})`);
    return wrong;
  },
  status(ifaces) {
    const s = lbStatus(ifaces.map((i) => i.name));
    if (!s.loaded) return 'not loaded';
    const backends = s.vips.reduce((n, v) => n + v.backends.length, 0);
    return `${Object.keys(s.interfaces).join(', ')}: ${s.vips.length} VIPs, ${backends} backends, ` +
      `${s.connections}/${s.connections_max} connections`;
  },
  stop() {
    expiry.stop();
  },
};
