// The load balancer's section of the service config: the same declarative
// config `xdp-lb --apply` takes ({ "nat": ..., "timeouts": ..., "vips": [...] },
// and every VIP's forwarding defaults: "forwarding", "encap_source_ipv4",
// "encap_source_ipv6", "gue_port").
import type { SectionReader } from '../contract.js';
import { validateConfig, type LbConfig } from './config.js';

export const LB_SETTINGS: SectionReader<LbConfig> = {
  keys: ['nat', 'timeouts', 'vips', 'forwarding', 'encap_source_ipv4', 'encap_source_ipv6', 'gue_port'],
  parse: (v): LbConfig => validateConfig(v),
};
