// The registry: every subprogram xdplb ships, one line each, in slot order
// of their defaults. The service, the commands, the unit files, the
// package's lists and the man pages are made from this list.
import type { Subprogram } from './contract.js';
import { sampler } from './sampler/index.js';
import { filter } from './filter/index.js';
import { decap } from './decap/index.js';
import { lb } from './lb/index.js';

export const SUBPROGRAMS: readonly Subprogram[] = [sampler, filter, decap, lb];

export function subprogram(name: string): Subprogram {
  const found = SUBPROGRAMS.find((s) => s.name === name);
  if (!found) throw new Error(`no subprogram ${name}`);
  return found;
}
