// The sampler's Prometheus metrics, read at each scrape: samples written
// (packets, verdicts), samples lost to a full ring, and the rates set.
import type { Collector, MetricFamily, Sample } from '../contract.js';
import { status } from './sampler.js';

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
      return [
        { name: 'xdplb_sampler_samples_total', help: 'Samples written to the interface\'s ring buffer: packet samples (the sampler) and verdict samples (every slot).', type: 'counter', samples },
        { name: 'xdplb_sampler_lost_total', help: 'Samples not written because the ring buffer was full.', type: 'counter', samples: lost },
        { name: 'xdplb_sampler_rate', help: 'The sampler samples 1 in this many packets (0: off).', type: 'gauge', samples: rate },
        { name: 'xdplb_sampler_verdict_rate', help: 'Final non-PASS verdicts are sampled 1 in this many (0: off).', type: 'gauge', samples: verdictRate },
      ];
    },
  };
}
