// The Prometheus text exposition format (version 0.0.4), written here
// rather than through prom-client. A balancer with 100 VIPs x 100 backends
// has about 60,000 series; prom-client took 400-700 ms to build and render
// them on this project's machines (a label object hashed per sample on set,
// arrays made per sample on render), where a scrape must take under 50 ms:
// the daemon that serves it also feeds the watchdog. The format is small
// and stable, and the tests check what this writes with promtool's linter
// and with a real Prometheus. Lines go straight into one growing buffer:
// a 5 MB string made of 60,000 concatenations costs three times as much
// (flattened, then encoded again for the socket).
//
// Values: a bigint counter is written exactly, as its decimal digits;
// Prometheus parses every value into a float64, so above 2^53 it stores the
// nearest float64 either way.
import { series, type MetricFamily, type Sample } from '../programs/contract.js';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeHelp = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function value(v: Sample['value']): string {
  // Most counters fit a float64 exactly, and a number prints faster than a bigint.
  if (typeof v === 'bigint') return v <= Number.MAX_SAFE_INTEGER && v >= -Number.MAX_SAFE_INTEGER ? String(Number(v)) : String(v);
  if (Number.isInteger(v)) return String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * The exposition being written: UTF-8 in one buffer that grows by doubling.
 * Lines gather in a string of up to 16 KB before each copy into the buffer:
 * a copy per line costs more than making the line.
 */
export class Exposition {
  private buf: Buffer;
  private at = 0;
  private pending = '';

  /** `expect`: the bytes it will likely hold (the last scrape's), so that
   *  the buffer is not grown and copied at every scrape; `spare`: a buffer
   *  to write into if it is large enough (the last scrape's, once sent):
   *  memory touched for the first time costs a page fault per 4 KiB, and
   *  on this project's machines that was most of a scrape's writing. */
  constructor(expect = 0, spare?: Buffer) {
    const want = Math.max(64 * 1024, Math.ceil(expect * 1.125));
    this.buf = spare && spare.length >= want ? spare : Buffer.allocUnsafe(want);
  }

  write(s: string): void {
    this.pending += s;
    if (this.pending.length >= 16 * 1024) this.flush();
  }

  /** What was written: the start of `buffer`. */
  bytes(): Buffer {
    this.flush();
    return this.buf.subarray(0, this.at);
  }

  /** The whole buffer written into, to hand to the next one as its spare. */
  get buffer(): Buffer {
    return this.buf;
  }

  private flush(): void {
    const s = this.pending;
    this.pending = '';
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    if (this.at + s.length * 3 > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + s.length * 3));
      this.buf.copy(bigger, 0, 0, this.at);
      this.buf = bigger;
    }
    this.at += this.buf.write(s, this.at, 'utf8');
  }
}

/**
 * Families as exposition text, written to `out`. Names are checked (metric and label names,
 * a name given twice across everything written: `taken`, shared by the
 * calls of one scrape) before anything is written, so a wrong family fails
 * its collector alone.
 */
export function writeFamilies(families: MetricFamily[], taken: Set<string>, out: Exposition): void {
  const labelNames = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name ${JSON.stringify(f.name)}`);
    if (taken.has(f.name)) throw new Error(`metric ${f.name} is exported twice`);
    for (const k of f.labels) {
      if (labelNames.has(k)) continue;
      if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(k)} in metric ${f.name}`);
      labelNames.add(k);
    }
    // Samples carry only the labels declared (the documented ones).
    const declared = new Set(f.labels);
    for (const s of f.samples) {
      if (s.series && s.series.labels !== f.labels) throw new Error(`metric ${f.name}: a series made for labels (${s.series.labels.join(', ')})`);
      for (const k in s.labels) if (!declared.has(k)) throw new Error(`metric ${f.name}: label ${JSON.stringify(k)} is not declared`);
    }
  }
  for (const f of families) {
    taken.add(f.name);
    out.write(`# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`);
    for (const s of f.samples) {
      const labels = s.series?.text ?? (s.labels ? series(f.labels, s.labels).text : '');
      out.write(`${f.name}${labels} ${value(s.value)}\n`);
    }
  }
}
