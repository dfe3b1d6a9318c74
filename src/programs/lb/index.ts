// The L4 load balancer: VIPs to weighted backends with Maglev consistent
// hashing, connection tracking and NAT.
import type { Subprogram } from '../contract.js';
import { LB_FAMILIES, lbCollector } from './metrics.js';
import { ACTIONS, ATTACH, OPTIONS, formatStatus } from './cli.js';
import { LAYOUT } from './layout.js';
import { LB_SETTINGS } from './settings.js';
import { LB_SPEC } from './spec.js';
import { lbStatus } from './status.js';
import type { LbSection } from './settings.js';

export const lb: Subprogram<LbSection> = {
  ...LB_SPEC,
  summary: 'xdplb L4 load balancer: VIPs to backends with Maglev and NAT',
  description: [
    'VIPs (address, port, tcp or udp) go to weighted backends chosen by Maglev hashing, with connection tracking ' +
      'and NAT. The config and the connection state are shared by every interface of the network namespace the ' +
      'balancer is attached to, and outlive its detach from the last one (--purge removes them).',
  ],
  layouts: LAYOUT,
  section: LB_SETTINGS,
  attach: ATTACH,
  status: { read: lbStatus, text: formatStatus },
  options: OPTIONS,
  actions: ACTIONS,
  metrics: () => lbCollector(),
  metricFamilies: Object.values(LB_FAMILIES),
  service: async () => (await import('./service.js')).lbService(),
  unit: {
    unit: [
      '# BIRD announces the VIPs (see docs/BGP.md): started first when both are, not required.',
      'Wants=bird.service',
      'After=bird.service',
    ],
    service: [
      '# Health and announcements for xdp-lb --status and the metrics; kept after a',
      '# crash so that its status shows the last state as stale.',
      'RuntimeDirectory=xdplb',
      'RuntimeDirectoryPreserve=yes',
      '# The file of VIPs and the control socket in BIRD\'s directory, owned by its',
      '# user (Debian\'s bird2 runs BIRD as bird:bird, the socket mode 0660).',
      'ReadWritePaths=-/run/bird',
      'CapabilityBoundingSet=CAP_DAC_OVERRIDE',
      'AmbientCapabilities=CAP_DAC_OVERRIDE',
    ],
  },
};
