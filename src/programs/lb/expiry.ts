// Ending stateless VIPs' chaining when its window has passed, for the
// service: a timer set for the next generation due (and at least once a
// minute, for changes other commands made), each expiry a table swap
// (apply.ts expireChaining). The data plane never looks at time for it.
import type { Log } from '../contract.js';
import { bootTimeNs } from '../../sys/clock.js';
import { withLbState } from './pins.js';
import { expireChaining } from './apply.js';

/** The longest the timer sleeps. */
const POLL_MS = 60_000;

export class ChainExpiry {
  private timer: NodeJS.Timeout | undefined;

  /** End what is due now, then sleep until the next is. */
  run(log: Log): void {
    clearTimeout(this.timer);
    let wait = POLL_MS;
    try {
      const r = withLbState((maps) => expireChaining(maps));
      if (r.tables) log(`lb: chaining ended in ${r.tables} table(s): their window has passed`, 'info');
      // A millisecond late rather than early, so that the generation is due.
      if (r.next !== undefined) wait = Math.min(wait, Math.max(0, Number((r.next - bootTimeNs()) / 1_000_000n) + 1));
    } catch (err) {
      log(`lb: ending chaining failed: ${(err as Error).message}`, 'err');
    }
    this.timer = setTimeout(() => this.run(log), wait);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
