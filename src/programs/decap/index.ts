// The decapsulator: the backend's side of direct server return. Packets
// the balancer sent in IPIP or GUE to this host's tunnel addresses leave
// their outer header here and reach the kernel as the client sent them.
import type { Subprogram } from '../contract.js';
import { ACTIONS, ATTACH, OPTIONS } from './cli.js';
import { DECAP_FAMILIES, decapCollector } from './metrics.js';
import { DECAP_SETTINGS, type DecapSettings } from './settings.js';
import { DECAP, LAYOUTS } from './spec.js';
import { decapStatus, formatStatus } from './status.js';

export const decap: Subprogram<DecapSettings> = {
  ...DECAP,
  summary: 'xdplb decapsulator: the backend\'s side of direct server return',
  description: [
    'Takes IPIP (IPv4 in IPv4, IPv6 in IPv6, IPv4 in IPv6) and GUE packets sent to this host\'s tunnel addresses out of ' +
      'their outer header and passes the client\'s packet on to the kernel, which answers the client directly; everything ' +
      'else goes on untouched. Tunnel packets to us that are cut short or inconsistent are dropped and counted.',
    'Without --tunnel-ipv4/--tunnel-ipv6, an interface\'s tunnel addresses are its own: its primary IPv4 address and its ' +
      'first global IPv6 address, the addresses a balancer lists it by; GUE is taken on port 6080 unless --gue-port says ' +
      'otherwise (0: none). --check --vip says what else the host lacks as a backend: the VIPs on lo, rp_filter, ARP ' +
      'sysctls, the decapsulator.',
  ],
  layouts: LAYOUTS,
  section: DECAP_SETTINGS,
  attach: ATTACH,
  status: { read: decapStatus, text: formatStatus },
  options: OPTIONS,
  actions: ACTIONS,
  metrics: (ifnames) => decapCollector(ifnames),
  metricFamilies: Object.values(DECAP_FAMILIES),
  service: async () => (await import('./service.js')).DECAP_SERVICE,
};
