// The load balancer's section of the service config: the same declarative
// config `xdp-lb --apply` takes ({ "nat": ..., "timeouts": ..., "vips": [...] },
// and every VIP's forwarding defaults: FORWARDING_KEYS), and `bgp`, which
// only the service uses: how it drives BIRD to announce the VIPs (see bird.ts).
import type { SectionReader } from '../contract.js';
import { parseBgpConfig, type BirdConfig } from './bird.js';
import { FORWARDING_KEYS, validateConfig, type LbConfig } from './config.js';

/** The config, and `bgp` when the section has it (absent: nothing is announced). */
export type LbSection = LbConfig & { bgp?: BirdConfig };

export const LB_SETTINGS: SectionReader<LbSection> = {
  keys: ['nat', 'timeouts', 'vips', ...FORWARDING_KEYS, 'bgp'],
  parse: ({ bgp, ...rest }): LbSection => {
    const config: LbSection = validateConfig(rest);
    if (bgp !== undefined) config.bgp = parseBgpConfig(bgp);
    return config;
  },
};
