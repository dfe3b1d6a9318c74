// The load balancer's section of the service config: the same declarative
// config `xdp-lb --apply` takes ({ "nat": ..., "timeouts": ..., "vips": [...] }).
import type { SectionReader } from '../contract.js';
import { validateConfig, type LbConfig } from './config.js';

export const LB_SETTINGS: SectionReader<LbConfig> = {
  keys: ['nat', 'timeouts', 'vips'],
  parse: (v): LbConfig => validateConfig(v),
};
