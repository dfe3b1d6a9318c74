// Layouts shared with C: the sample records of the ring buffer, the
// interface's sampling settings and counters (bpf/include/xdplb/sample.h) and
// the sampler's own setting (bpf/subprogs/sampler/sampler_config.h). Checked
// against the object's BTF by the layout test with every subprogram's.
import { ACTIONS } from '../../root/stats.js';

/** Bytes of a frame a sample carries at most (XDPLB_SNAP_MAX). */
export const SNAP_MAX = 9216;
export const SNAP_DEFAULT = 256;
/** The interface's ring buffer of samples (XDPLB_SAMPLE_RING_BYTES). */
export const RING_BYTES = 1 << 20;

export const SAMPLE_HEADER = {
  timestamp: 0, ifindex: 8, rx_queue: 12, len: 16, cap_len: 20, slot: 24, action: 25, kind: 26, size: 32,
} as const;
export const SAMPLING = { verdict_rate: 0, snaplen: 4, size: 8 } as const;
export const SAMPLE_COUNTERS = { packets: 0, verdicts: 8, lost: 16, size: 24 } as const;
export const SAMPLER_CONFIG = { rate: 0, size: 4 } as const;

/** Every struct above, by C name, for the layout test. */
export const LAYOUTS = {
  xdplb_sample: SAMPLE_HEADER,
  xdplb_sampling: SAMPLING,
  xdplb_sample_counters: SAMPLE_COUNTERS,
  xdplb_sampler_config: SAMPLER_CONFIG,
};

export const KIND_PACKET = 0;
export const KIND_VERDICT = 1;
const NO_ACTION = 0xff;

export interface Sample {
  kind: 'packet' | 'verdict';
  /** CLOCK_BOOTTIME, ns. */
  timestamp: bigint;
  ifindex: number;
  rxQueue: number;
  /** The frame's original length. */
  len: number;
  slot: number;
  /** The final verdict of a verdict sample ('XDP_DROP', ...), null otherwise. */
  action: string | null;
  /** The first bytes of the frame (cap_len of them). */
  data: Buffer;
}

/** A ring buffer record; null when it is too short to be one of ours. */
export function decodeSample(record: Buffer): Sample | null {
  if (record.length < SAMPLE_HEADER.size) return null;
  const capLen = record.readUInt32LE(SAMPLE_HEADER.cap_len);
  if (record.length < SAMPLE_HEADER.size + capLen) return null;
  const action = record[SAMPLE_HEADER.action];
  return {
    kind: record[SAMPLE_HEADER.kind] === KIND_VERDICT ? 'verdict' : 'packet',
    timestamp: record.readBigUInt64LE(SAMPLE_HEADER.timestamp),
    ifindex: record.readUInt32LE(SAMPLE_HEADER.ifindex),
    rxQueue: record.readUInt32LE(SAMPLE_HEADER.rx_queue),
    len: record.readUInt32LE(SAMPLE_HEADER.len),
    slot: record[SAMPLE_HEADER.slot],
    action: action === NO_ACTION ? null : ACTIONS[action] ?? `action ${action}`,
    data: record.subarray(SAMPLE_HEADER.size, SAMPLE_HEADER.size + capLen),
  };
}
