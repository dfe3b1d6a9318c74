// The sampler's Prometheus metrics, read at each scrape: samples written
// (packets, verdicts), samples lost to a full ring, and the rates set.
import { family, type Collector, type FamilySpec, type MetricFamily, type Sample } from '../contract.js';
import { status } from './sampler.js';

export const SAMPLER_FAMILIES = {
  samples: { name: 'xdplb_sampler_samples_total', type: 'counter', labels: ['interface', 'kind'], help: 'Samples written to the interface\'s ring buffer: packet samples (the sampler) and verdict samples (every slot).' },
  lost: { name: 'xdplb_sampler_lost_total', type: 'counter', labels: ['interface'], help: 'Samples not written because the ring buffer was full.' },
  rate: { name: 'xdplb_sampler_rate', type: 'gauge', labels: ['interface'], help: 'The sampler samples 1 in this many packets (0: off).' },
  verdictRate: { name: 'xdplb_sampler_verdict_rate', type: 'gauge', labels: ['interface'], help: 'Final non-PASS verdicts are sampled 1 in this many (0: off).' },
} as const satisfies Record<string, FamilySpec>;
const F = SAMPLER_FAMILIES;

export function samplerCollector(ifnames: () => string[]): Collector {
  return {
    name: 'sampler',
    families(): MetricFamily[] {
      const wanted = new Set(ifnames());
      const samples: Sample[] = [];
      const lost: Sample[] = [];
      const rate: Sample[] = [];
      const verdictRate: Sample[] = [];
      for (const [ifname, s] of Object.entries(status()).filter(([n]) => wanted.has(n))) {
        samples.push({ labels: { interface: ifname, kind: 'packet' }, value: s.samples.packets });
        samples.push({ labels: { interface: ifname, kind: 'verdict' }, value: s.samples.verdicts });
        lost.push({ labels: { interface: ifname }, value: s.samples.lost });
        if (s.rate !== null) rate.push({ labels: { interface: ifname }, value: s.rate });
        verdictRate.push({ labels: { interface: ifname }, value: s.verdict_rate });
      }
      return [family(F.samples, samples), family(F.lost, lost), family(F.rate, rate), family(F.verdictRate, verdictRate)];
    },
  };
}
