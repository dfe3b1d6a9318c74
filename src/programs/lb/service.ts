// The load balancer as a service (xdp-lb run): in its slot on the root's
// interfaces, with the section's VIPs applied (only the difference written).
import type { SectionHandler } from '../../service/section-service.js';
import { attachSubprogram, detachSubprogram } from '../../root/subprogram.js';
import type { LbConfig } from './config.js';
import { checkPinnedLayout, closeLbMaps, requireLbMaps } from './pins.js';
import { LB_SPEC } from './spec.js';
import { applyConfig } from './state.js';
import { lbStatus } from './status.js';

export const LB_SERVICE: SectionHandler<LbConfig> = {
  section: 'lb',
  apply(ifnames, slot, config) {
    checkPinnedLayout();
    for (const ifname of ifnames) attachSubprogram(ifname, LB_SPEC, slot);
    const fds = requireLbMaps();
    try {
      applyConfig(fds, config);
    } finally {
      closeLbMaps(fds);
    }
  },
  detach(ifnames) {
    for (const ifname of ifnames) detachSubprogram(ifname, LB_SPEC);
  },
  status(ifnames) {
    const s = lbStatus(ifnames);
    if (!s.loaded) return 'not loaded';
    const backends = s.vips.reduce((n, v) => n + v.backends.length, 0);
    return `${Object.keys(s.interfaces).join(', ')}: ${s.vips.length} VIPs, ${backends} backends, ` +
      `${s.connections}/${s.connections_max} connections`;
  },
};
