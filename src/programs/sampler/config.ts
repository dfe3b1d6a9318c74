// The sampler's settings: what an operator may ask for, checked before any
// map is touched, and their encoding in the maps.
import { mapLookup, mapLookupPerCpu, mapUpdate } from '../../libbpf/index.js';
import { UsageError } from '../../errors.js';
import type { SubprogramSpec } from '../../root/subprogram.js';
import { SAMPLE_COUNTERS, SAMPLER_CONFIG, SAMPLING, SNAP_DEFAULT } from './layout.js';

/** The sampler's rate: the global sampler_config in the section of that
 *  name (one load per packet, no lookup), whose map is pinned as this. */
export const CONFIG_MAP = 'sampler_config';

export const SAMPLER: SubprogramSpec = {
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

const ZERO_KEY = Buffer.alloc(4);

/** The interface's settings for every sample (xdplb_sampling). */
export interface Sampling {
  verdictRate: number;
  snaplen: number;
}

export function readSampling(fd: number): Sampling {
  const v = mapLookup(fd, ZERO_KEY, SAMPLING.size)!;
  // A fresh map holds zeros: the kernel then captures the default snaplen.
  return { verdictRate: v.readUInt32LE(SAMPLING.verdict_rate), snaplen: v.readUInt32LE(SAMPLING.snaplen) || SNAP_DEFAULT };
}

/** One map update: a packet sees the old settings or the new ones. */
export function writeSampling(fd: number, s: Sampling): void {
  const v = Buffer.alloc(SAMPLING.size);
  v.writeUInt32LE(s.verdictRate, SAMPLING.verdict_rate);
  v.writeUInt32LE(s.snaplen, SAMPLING.snaplen);
  mapUpdate(fd, ZERO_KEY, v);
}

export function readRate(fd: number): number {
  return mapLookup(fd, ZERO_KEY, SAMPLER_CONFIG.size)!.readUInt32LE(SAMPLER_CONFIG.rate);
}

export function writeRate(fd: number, rate: number): void {
  const v = Buffer.alloc(SAMPLER_CONFIG.size);
  v.writeUInt32LE(rate, SAMPLER_CONFIG.rate);
  mapUpdate(fd, ZERO_KEY, v);
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
export function readSampleCounters(fd: number): SampleCounters {
  const sum: SampleCounters = { packets: 0n, verdicts: 0n, lost: 0n };
  for (const cpu of mapLookupPerCpu(fd, ZERO_KEY, SAMPLE_COUNTERS.size) ?? []) {
    sum.packets += cpu.readBigUInt64LE(SAMPLE_COUNTERS.packets);
    sum.verdicts += cpu.readBigUInt64LE(SAMPLE_COUNTERS.verdicts);
    sum.lost += cpu.readBigUInt64LE(SAMPLE_COUNTERS.lost);
  }
  return sum;
}
