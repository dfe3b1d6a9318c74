// The kernel's clocks, as BPF programs and bpf_prog_info use them.
import { c } from '../libbpf/ffi.js';

const CLOCK_BOOTTIME = 7;

/** CLOCK_BOOTTIME in ns: the clock of bpf_prog_info.load_time. */
export function bootTimeNs(): bigint {
  const ts = Buffer.alloc(16);
  c.clock_gettime(CLOCK_BOOTTIME, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

const CLOCK_MONOTONIC = 1;

/** CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns(). */
export function monotonicNs(): bigint {
  const ts = Buffer.alloc(16);
  c.clock_gettime(CLOCK_MONOTONIC, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}
