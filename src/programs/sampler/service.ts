// The sampler as a service (xdp-sampler run): rates and snaplen from its
// section of the config.
import type { ServiceHandler } from '../contract.js';
import { findProgram, placeProgram, removeProgram, withRoot } from '../../root/place.js';
import { SAMPLER, readSampling } from './config.js';
import { configureSampler, samplerStatus, verdictSamplesOff } from './sampler.js';
import type { SamplerSettings } from './settings.js';

export const SAMPLER_SERVICE: ServiceHandler<SamplerSettings> = {
  apply(ifaces, slot, s) {
    const before = ifaces.map((i) => {
      try {
        return samplerStatus(i);
      } catch {
        return null;
      }
    });
    const placed = placeProgram(SAMPLER, ifaces, slot);
    configureSampler(placed, { rate: s.rate, verdictRate: s.verdictRate, snaplen: s.snaplen });
    return placed.flatMap((p, i) => {
      const b = before[i];
      const same = b && !p.changed && b.rate === s.rate && b.verdict_rate === s.verdictRate && b.snaplen === s.snaplen;
      return same ? [] : [`${p.iface.name}: sampler in slot ${p.slot}, rate ${s.rate}, verdict rate ${s.verdictRate}, snaplen ${s.snaplen}`];
    });
  },
  detach(ifaces) {
    removeProgram(SAMPLER, ifaces);
    verdictSamplesOff(ifaces);
  },
  check(ifaces, slot, s) {
    return ifaces.flatMap((iface) => withRoot(iface, (root) => {
      const at = findProgram(root, SAMPLER);
      if (!at || at.slot !== slot) return [`${iface.name}: xdp_sampler not in slot ${slot}`];
      const st = samplerStatus(iface);
      const sampling = readSampling(root.maps.sampling);
      return st.rate !== s.rate || sampling.verdictRate !== s.verdictRate || sampling.snaplen !== s.snaplen
        ? [`${iface.name}: sampler settings differ`]
        : [];
    }));
  },
  status(ifaces) {
    return ifaces
      .map((iface) => {
        const s = samplerStatus(iface);
        const rate = (n: number | null) => (n ? `1 in ${n}` : 'off');
        return `${iface.name}: packets ${rate(s.rate)}, verdicts ${rate(s.verdict_rate)}, snaplen ${s.snaplen}`;
      })
      .join('; ');
  },
};
