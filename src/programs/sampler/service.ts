// The sampler as a service (xdp-sampler run): rates and snaplen from its
// section of the config.
import type { SectionHandler } from '../../service/section-service.js';
import { attachSampler, detachSampler, samplerStatus } from './sampler.js';
import type { SamplerSettings } from './settings.js';

export const SAMPLER_SERVICE: SectionHandler<SamplerSettings> = {
  section: 'sampler',
  apply(ifnames, slot, s) {
    attachSampler(ifnames, slot, s);
  },
  detach(ifnames) {
    detachSampler(ifnames);
  },
  status(ifnames) {
    return ifnames
      .map((ifname) => {
        const s = samplerStatus(ifname);
        const rate = (n: number | null) => (n ? `1 in ${n}` : 'off');
        return `${ifname}: packets ${rate(s.rate)}, verdicts ${rate(s.verdict_rate)}, snaplen ${s.snaplen}`;
      })
      .join('; ');
  },
};
