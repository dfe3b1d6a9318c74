// What the build needs to know about the commands, from the same tables
// they run on: every tool's table (for man pages and completion) and the
// subprograms (for their bundles, unit files and the package's lists).
// Bundled and loaded by scripts/bundle.mjs and scripts/generate.mjs.
import { SUBPROGRAMS } from '../programs/index.js';
import { ROOT_TOOL } from './root.js';
import { subprogramTool } from './subprogram.js';
import { manPage } from './man.js';
import { withMetricsTable } from '../service/metrics-doc.js';

export const TOOLS = [ROOT_TOOL, ...SUBPROGRAMS.map(subprogramTool)];
export const PROGRAMS = SUBPROGRAMS.map((s) => ({ name: s.name, summary: s.summary, defaultSlot: s.defaultSlot, unit: s.unit }));
export { manPage, withMetricsTable };
