// The load balancer's section of the service config: the same declarative
// config `xdp-lb --apply` takes ({ "nat": ..., "timeouts": ..., "vips": [...] },
// and every VIP's forwarding defaults: FORWARDING_KEYS).
import type { SectionReader } from '../contract.js';
import { FORWARDING_KEYS, validateConfig, type LbConfig } from './config.js';

export const LB_SETTINGS: SectionReader<LbConfig> = {
  keys: ['nat', 'timeouts', 'vips', ...FORWARDING_KEYS],
  parse: (v): LbConfig => validateConfig(v),
};
