// The sampler's section of the service config:
// { "rate": 1000, "verdict_rate": 100, "snaplen": 256 }
import type { SectionReader } from '../contract.js';
import { DEFAULT_RATE, DEFAULT_VERDICT_RATE, MAX_RATE, MAX_SNAPLEN } from './config.js';
import { SNAP_DEFAULT } from './layout.js';

export interface SamplerSettings {
  rate: number;
  verdictRate: number;
  snaplen: number;
}

function whole(v: unknown, path: string, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`${path}: expected ${what}, got ${JSON.stringify(v) ?? String(v)}`);
  }
  return v;
}

export const SAMPLER_SETTINGS: SectionReader<SamplerSettings> = {
  keys: ['rate', 'verdict_rate', 'snaplen'],
  parse(v): SamplerSettings {
    return {
      rate: whole(v.rate ?? DEFAULT_RATE, 'rate', 0, MAX_RATE, `1 in N as a whole number from 0 (off) to ${MAX_RATE}`),
      verdictRate: whole(v.verdict_rate ?? DEFAULT_VERDICT_RATE, 'verdict_rate', 0, MAX_RATE, `1 in N as a whole number from 0 (off) to ${MAX_RATE}`),
      snaplen: whole(v.snaplen ?? SNAP_DEFAULT, 'snaplen', 1, MAX_SNAPLEN, `bytes from 1 to ${MAX_SNAPLEN}`),
    };
  },
};
