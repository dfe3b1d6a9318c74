// A capture: every sample from the interfaces' ring buffers written to a
// capture file as it arrives, until a count, a duration or a stop request.
// Verdict samples carry a comment naming the slot, the program in it and
// the action, e.g. `slot=2 prog=xdp_filter action=XDP_DROP`.
import { describeProg, progFullName } from '../../libbpf/index.js';
import { bootTimeNs } from '../../sys/clock.js';
import type { RootArray } from '../../root/array.js';
import { openRoot } from '../../root/place.js';
import { resolveIface } from '../../root/pins.js';
import { readSampleCounters, readSampling } from './config.js';
import { SNAP_MAX, type Sample } from './layout.js';
import { captureWriter, type CaptureInterface, type Format } from './pcap.js';
import { SampleReader, pollReaders } from './reader.js';

export interface CaptureRequest {
  ifnames: string[];
  format: Format;
  /** Stop after this many samples. */
  count?: number;
  /** Stop after this many milliseconds. */
  durationMs?: number;
}

export interface CaptureResult {
  /** Samples written to the file. */
  written: number;
  /** Samples the kernel could not write while the capture ran (ring full). */
  lost: bigint;
  /** Ring records too short to be samples (none expected; counted, not hidden). */
  malformed: number;
}

/** Wall-clock ns of a CLOCK_BOOTTIME stamp, from one reading of both clocks. */
export function bootToWallClock(): (bootNs: bigint) => bigint {
  const wallNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  const offset = wallNs - bootTimeNs();
  return (bootNs) => bootNs + offset;
}

/** Name of the program in a slot, remembered by program id. */
class SlotNames {
  private names = new Map<number, string>();
  constructor(private root: RootArray) {}

  name(slot: number): string {
    const id = this.root.slotIds()[slot] ?? 0;
    if (!id) return '-';
    let name = this.names.get(id);
    if (name === undefined) {
      const info = describeProg(id);
      name = info ? progFullName(info) : '-';
      this.names.set(id, name);
    }
    return name;
  }
}

export function verdictComment(slot: number, prog: string, action: string): string {
  return `slot=${slot} prog=${prog} action=${action}`;
}

export class Capture {
  private roots: RootArray[] = [];
  private readers: SampleReader[] = [];
  private interfaces: CaptureInterface[] = [];
  private lostAtStart: bigint[] = [];
  private written = 0;
  private stopped = false;
  /** Records of the current drain round, written in one go after it. */
  private pending: Array<{ timestamp: bigint; bytes: Buffer }> = [];

  /** Open every interface's ring buffer; fails before anything is written
   *  when an interface, its root or its sample maps are missing. */
  constructor(private req: CaptureRequest, private out: (bytes: Buffer) => void) {
    try {
      for (const ifname of req.ifnames) {
        const root = openRoot(resolveIface(ifname));
        this.roots.push(root);
        const maps = root.maps;
        this.interfaces.push({ name: ifname, snaplen: Math.min(readSampling(maps.sampling).snaplen, SNAP_MAX) });
        this.lostAtStart.push(readSampleCounters(maps.sample_stats).lost);
      }
      const writer = captureWriter(req.format);
      const toWall = bootToWallClock();
      // Samples taken before the capture started (still in the ring from
      // earlier traffic) are not this capture's.
      const start = bootTimeNs();
      this.roots.forEach((root, interfaceId) => {
        const names = new SlotNames(root);
        this.readers.push(new SampleReader(root.maps.samples, (s: Sample) => {
          if (this.done() || s.timestamp < start) return;
          this.pending.push({
            timestamp: s.timestamp,
            bytes: writer.packet({
              interfaceId, timestampNs: toWall(s.timestamp), origLen: s.len, data: s.data,
              comment: s.kind === 'verdict' ? verdictComment(s.slot, names.name(s.slot), s.action!) : undefined,
            }),
          });
          this.written += 1;
        }));
      });
      this.out(writer.header(this.interfaces));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private done(): boolean {
    return this.stopped || (this.req.count !== undefined && this.written >= this.req.count);
  }

  private flush(): void {
    if (!this.pending.length) return;
    // Several rings: merge the round's records by time (the sort is stable,
    // so one ring's order is kept).
    if (this.readers.length > 1) this.pending.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
    const chunk = this.pending.length === 1 ? this.pending[0].bytes : Buffer.concat(this.pending.map((p) => p.bytes));
    this.pending = [];
    this.out(chunk);
  }

  /** Ask the capture to finish: what is in the rings now is still written. */
  stop(): void {
    if (this.stopped) return;
    for (const r of this.readers) r.drain();
    this.flush();
    this.stopped = true;
  }

  /** Run until the count is reached, the duration is over or stop(). */
  async run(): Promise<CaptureResult> {
    const timer = this.req.durationMs !== undefined ? setTimeout(() => this.stop(), this.req.durationMs) : undefined;
    try {
      await pollReaders(this.readers, () => this.done(), () => this.flush());
    } finally {
      clearTimeout(timer);
    }
    const lost = this.roots.reduce(
      (sum, root, i) => sum + readSampleCounters(root.maps.sample_stats).lost - this.lostAtStart[i], 0n,
    );
    return { written: this.written, lost, malformed: this.readers.reduce((n, r) => n + r.malformed, 0) };
  }

  close(): void {
    this.readers.forEach((r) => r.close());
    this.roots.forEach((r) => r.close());
    this.readers = [];
    this.roots = [];
  }
}
