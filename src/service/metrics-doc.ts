// The list of metrics in README.md, made from the declarations the
// collectors export with (`make docs` rewrites it; a unit test fails when
// README.md and the code disagree).
import { SUBPROGRAMS } from '../programs/index.js';
import type { FamilySpec } from '../programs/contract.js';
import { SERVICE_FAMILIES } from './metrics.js';

export const ALL_FAMILIES: readonly FamilySpec[] = [...Object.values(SERVICE_FAMILIES), ...SUBPROGRAMS.flatMap((s) => s.metricFamilies)];

const BEGIN = '<!-- metrics: made by `make docs` from the collectors\' declarations; edit those, not this -->';
const END = '<!-- end of metrics -->';

export function metricsTable(families: readonly FamilySpec[] = ALL_FAMILIES): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    '| Metric | Type | Labels | Meaning |',
    '|---|---|---|---|',
    ...families.map((f) => `| \`${f.name}\` | ${f.type} | ${f.labels.map((l) => `\`${l}\``).join(', ')} | ${cell(f.help)} |`),
  ].join('\n');
}

/** `readme` with the text between the markers replaced by the table. */
export function withMetricsTable(readme: string): string {
  const from = readme.indexOf(BEGIN);
  const to = readme.indexOf(END);
  if (from < 0 || to < from) throw new Error(`README.md has no metrics markers: ${BEGIN} ... ${END}`);
  return `${readme.slice(0, from + BEGIN.length)}\n${metricsTable()}\n${readme.slice(to)}`;
}
