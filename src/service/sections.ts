// How each subprogram reads its section of the config. Only the readers
// (pure validation) live here, so xdp-root can check the whole file without
// loading the subprograms' kernel code.
import { FILTER_SETTINGS } from '../programs/filter/settings.js';
import { LB_SETTINGS } from '../programs/lb/settings.js';
import { SAMPLER_SETTINGS } from '../programs/sampler/settings.js';
import type { SectionName, SectionSettings } from './config.js';

export const SECTION_READERS: Partial<Record<SectionName, SectionSettings>> = {
  filter: FILTER_SETTINGS,
  sampler: SAMPLER_SETTINGS,
  lb: LB_SETTINGS,
};
