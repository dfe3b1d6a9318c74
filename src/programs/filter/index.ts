// The filter (ecbpf's xdp_filter, with IPv6 parity and per-prefix hits):
// malformed frames, source drop lists, fragments and Packet Too Big.
import type { Subprogram } from '../contract.js';
import { FILTER_FAMILIES, filterCollector } from './metrics.js';
import { ACTIONS, ATTACH, OPTIONS } from './cli.js';
import { FILTER, LAYOUTS } from './layout.js';
import { FILTER_SETTINGS, type FilterSettings } from './settings.js';
import { filterStatus, formatStatus } from './status.js';

export const filter: Subprogram<FilterSettings> = {
  ...FILTER,
  summary: 'xdplb packet filter: malformed frames, fragments, source drop lists',
  description: [
    'Drops malformed frames, packets from listed source prefixes and, with --frags-drop, fragments ' +
      '(answering first fragments with Packet Too Big, at most --ptb-max-pps per second). ' +
      'Everything else goes on to the next slot.',
  ],
  layouts: LAYOUTS,
  section: FILTER_SETTINGS,
  attach: ATTACH,
  status: { read: filterStatus, text: formatStatus },
  options: OPTIONS,
  actions: ACTIONS,
  metrics: filterCollector,
  metricFamilies: Object.values(FILTER_FAMILIES),
  service: async () => (await import('./service.js')).FILTER_SERVICE,
};
