// The sampler's settings: what an operator may ask for, checked before any
// map is touched, and their encoding in the maps.
import type { BpfMap } from '../../libbpf/index.js';
import { UsageError } from '../../errors.js';
import type { ProgramSpec } from '../../root/place.js';
import { SAMPLER_CONFIG, SAMPLING, SNAP_DEFAULT } from './layout.js';

/** The sampler's rate: the global sampler_config in the section of that
 *  name (one load per packet, no lookup), whose map is pinned as this. */
export const CONFIG_MAP = 'sampler_config';

export const SAMPLER: ProgramSpec = {
  name: 'sampler',
  object: 'xdp_sampler.o',
  program: 'xdp_sampler',
  defaultSlot: 1,
  interfaceMaps: [`.data.${CONFIG_MAP}`],
};

export const DEFAULT_RATE = 1000;
export const DEFAULT_VERDICT_RATE = 0;
export const MAX_RATE = 0xffffffff;
export const MAX_SNAPLEN = 65535;

/** 1 in N, N a whole number; 0 turns sampling off. */
export function parseRate(value: unknown, flag: string): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) > MAX_RATE) {
    throw new UsageError(`invalid ${flag} '${text}': expected a whole number from 0 (off) to ${MAX_RATE}, sampling 1 in N packets`);
  }
  return Number(text);
}

export function parseSnaplen(value: unknown): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_SNAPLEN) {
    throw new UsageError(`invalid snaplen '${text}': expected a whole number of bytes from 1 to ${MAX_SNAPLEN}`);
  }
  return Number(text);
}

/** The interface's settings for every sample (xdplb_sampling). */
export interface Sampling {
  verdictRate: number;
  snaplen: number;
}

export function readSampling(map: BpfMap): Sampling {
  const v = map.lookup(0)!;
  // A fresh map holds zeros: the kernel then captures the default snaplen.
  return { verdictRate: v.readUInt32LE(SAMPLING.verdict_rate), snaplen: v.readUInt32LE(SAMPLING.snaplen) || SNAP_DEFAULT };
}

/** One map update: a packet sees the old settings or the new ones. */
export function writeSampling(map: BpfMap, s: Sampling): void {
  const v = Buffer.alloc(SAMPLING.size);
  v.writeUInt32LE(s.verdictRate, SAMPLING.verdict_rate);
  v.writeUInt32LE(s.snaplen, SAMPLING.snaplen);
  map.update(0, v);
}

export function readRate(map: BpfMap): number {
  return map.lookup(0)!.readUInt32LE(SAMPLER_CONFIG.rate);
}

export function writeRate(map: BpfMap, rate: number): void {
  const v = Buffer.alloc(SAMPLER_CONFIG.size);
  v.writeUInt32LE(rate, SAMPLER_CONFIG.rate);
  map.update(0, v);
}

export interface SampleCounters {
  /** Packet samples written by the sampler. */
  packets: bigint;
  /** Verdict samples written by the slot protocol. */
  verdicts: bigint;
  /** Samples not written because the ring buffer was full. */
  lost: bigint;
}

/** The interface's sample counters, summed over CPUs. */
export function readSampleCounters(map: BpfMap): SampleCounters {
  const [packets, verdicts, lost] = map.sumPerCpu(0);
  return { packets, verdicts, lost };
}
