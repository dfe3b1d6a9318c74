// The data plane's clock for idle timeouts: jiffies, which bpf_jiffies64()
// reads inline, when the kernel's HZ is known; otherwise the coarse clock in
// nanoseconds (lb_now() in bpf/subprogs/lb/lb_conntrack.h), a helper call
// that costs an established packet tens of ns more.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';

let cached: number | undefined;

/** CONFIG_HZ of the running kernel from its config (/boot or
 *  /proc/config.gz), 0 when neither says. */
export function kernelHz(): number {
  if (cached !== undefined) return cached;
  const sources: Array<() => string> = [
    () => readFileSync(`/boot/config-${release()}`, 'utf8'),
    () => gunzipSync(readFileSync('/proc/config.gz')).toString('utf8'),
  ];
  cached = 0;
  for (const read of sources) {
    let text: string;
    try {
      text = read();
    } catch {
      continue;
    }
    const m = /^CONFIG_HZ=(\d+)$/m.exec(text);
    if (m) {
      cached = Number(m[1]);
      break;
    }
  }
  return cached;
}
