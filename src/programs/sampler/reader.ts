// Reading an interface's ring buffer of samples without blocking: drain()
// takes what is there and returns at once; SampleReader.run() drains from a
// timer, sooner while samples keep coming, until it is stopped.
import { RingBuffer, type BpfMap } from '../../libbpf/index.js';
import { SAMPLE_HEADER, SNAP_MAX, decodeSample, type Sample } from './layout.js';

/** Most bytes copied out of the ring per record: a header and SNAP_MAX. */
export const MAX_RECORD = SAMPLE_HEADER.size + SNAP_MAX;

export class SampleReader {
  private ring: RingBuffer;
  /** Records that were not samples (never expected; counted, not hidden). */
  malformed = 0;

  constructor(samples: BpfMap, onSample: (s: Sample) => void) {
    this.ring = RingBuffer.open(samples.fd, MAX_RECORD, (data) => {
      const s = decodeSample(data);
      if (s) onSample(s);
      else this.malformed += 1;
    });
  }

  /** Hand every sample waiting now to the callback; returns how many. */
  drain(): number {
    return this.ring.consume();
  }

  close(): void {
    this.ring.close();
  }
}

/** How long the poller sleeps when the rings were empty: at 1 MiB a ring
 *  holds ~3,500 samples of 256 bytes, i.e. 5 ms at 700,000 samples/s. */
export const IDLE_POLL_MS = 5;

/** Drain the readers until `shouldStop()` says so: again at once (after I/O
 *  gets its turn) while samples arrive, after IDLE_POLL_MS when idle.
 *  `afterDrain` runs after every round (to write what it brought). */
export function pollReaders(readers: SampleReader[], shouldStop: () => boolean, afterDrain: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const tick = () => {
      try {
        let got = 0;
        for (const r of readers) got += r.drain();
        afterDrain();
        if (shouldStop()) return resolve();
        if (got) setImmediate(tick);
        else setTimeout(tick, IDLE_POLL_MS);
      } catch (err) {
        reject(err);
      }
    };
    tick();
  });
}
