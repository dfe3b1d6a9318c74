// The packet sampler: 1 in N packets, and every slot's verdicts, into the
// interface's ring buffer, captured to pcapng or pcap.
import type { Subprogram } from '../contract.js';
import { SAMPLER_FAMILIES, samplerCollector } from './metrics.js';
import { ACTIONS, ATTACH, OPTIONS, formatStatus } from './cli.js';
import { SAMPLER } from './config.js';
import { LAYOUTS } from './layout.js';
import { status, verdictSamplesOff } from './sampler.js';
import { SAMPLER_SETTINGS, type SamplerSettings } from './settings.js';

export const sampler: Subprogram<SamplerSettings> = {
  ...SAMPLER,
  summary: 'xdplb packet sampler: samples and verdicts to pcapng',
  description: [
    'The sampler copies 1 in N packets (at random; 0 is off) into the interface\'s ring buffer and passes every ' +
      'packet on. Final verdicts other than XDP_PASS of every slot are sampled into the same ring buffer at the ' +
      'verdict rate. --capture writes both to a capture file; `-o -` streams it to stdout.',
  ],
  layouts: LAYOUTS,
  section: SAMPLER_SETTINGS,
  attach: ATTACH,
  status: { read: status, text: formatStatus },
  options: OPTIONS,
  actions: ACTIONS,
  afterDetach: verdictSamplesOff,
  metrics: (ifnames) => samplerCollector(ifnames),
  metricFamilies: Object.values(SAMPLER_FAMILIES),
  service: async () => (await import('./service.js')).SAMPLER_SERVICE,
};
