// The Prometheus text exposition format (version 0.0.4), written here
// rather than through prom-client. A balancer with 100 VIPs x 100 backends
// has about 60,000 series; prom-client took 400-700 ms to build and render
// them on this project's machines (a label object hashed per sample on set,
// arrays made per sample on render), where a scrape must take under 50 ms:
// the daemon that serves it also feeds the watchdog. The format is small
// and stable, and the tests check what this writes with promtool's linter
// and with a real Prometheus. Lines go straight into one growing buffer,
// byte by byte: a 5 MB string made of 60,000 concatenations costs three
// times as much (flattened, then encoded again for the socket).
//
// Values: a bigint counter is written exactly, as its decimal digits;
// Prometheus parses every value into a float64, so above 2^53 it stores the
// nearest float64 either way.
import { series, type MetricFamily, type Sample } from '../programs/contract.js';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeHelp = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

/** A value other than a safe integer (those are written digit by digit). */
function valueText(v: Sample['value']): string {
  if (typeof v === 'bigint') return String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * The exposition being written: UTF-8 in one buffer that grows by doubling.
 * A sample's line is copied in from bytes made once (its name's, its
 * series'), its value's digits written one by one: strings made per line
 * (and joined, then encoded) cost more than the writing, most of it in the
 * garbage collector.
 */
export class Exposition {
  private buf: Buffer;
  private at = 0;

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
    this.room(s.length * 3);
    this.text(s);
  }

  /** One sample's line: the family's name and the series' labels (UTF-8), the value. */
  line(name: Buffer, labels: Buffer, v: number | bigint): void {
    this.room(name.length + labels.length + 1 + VALUE_BYTES);
    const buf = this.buf;
    // One copy each (Uint8Array.set): bytes copied one by one, or strings
    // encoded per line, cost several times as much.
    buf.set(name, this.at);
    buf.set(labels, this.at + name.length);
    this.at += name.length + labels.length;
    buf[this.at++] = 0x20;
    this.value(v);
  }

  /** The lines of `samples` whose text up to each value is in `kept`. */
  keptLines(kept: KeptText, samples: readonly Sample[]): void {
    this.room(kept.bytes.length + samples.length * VALUE_BYTES);
    const { bytes, ends } = kept;
    let from = 0;
    for (let i = 0; i < samples.length; i++) {
      const to = ends[i];
      this.buf.set(bytes.subarray(from, to), this.at);
      this.at += to - from;
      from = to;
      this.value(samples[i].value);
    }
  }

  /** A value and the line's end (room made). */
  private value(v: number | bigint): void {
    if (typeof v === 'number' && Number.isInteger(v) && v <= Number.MAX_SAFE_INTEGER && v >= -Number.MAX_SAFE_INTEGER) this.integer(v);
    else if (typeof v === 'bigint' && v <= MAX_SAFE && v >= -MAX_SAFE) this.integer(Number(v));
    else {
      // A bigint may have any number of digits.
      const text = valueText(v);
      this.room(text.length + 1);
      this.text(text);
    }
    this.buf[this.at++] = 0x0a;
  }

  /** What was written: the start of `buffer`. */
  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  /** The whole buffer written into, to hand to the next one as its spare. */
  get buffer(): Buffer {
    return this.buf;
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  /** `s` at the end (room made): ASCII copied unit by unit, the rest encoded. */
  private text(s: string): void {
    const buf = this.buf;
    let at = this.at;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.at = at + buf.write(s.slice(i), at, 'utf8');
        return;
      }
      buf[at++] = c;
    }
    this.at = at;
  }

  /** A safe integer's decimal digits (room made): below 10^9 in one part,
   *  above in two. Float64 arithmetic here would be exact but slow (a
   *  remainder of doubles is a call into C): 25 ms for 60,000 counters. */
  private integer(v: number): void {
    if (v < 0) {
      this.buf[this.at++] = 0x2d;
      v = -v;
    }
    if (v < 1e9) return this.digits(v, 1);
    let high = Math.floor(v / 1e9);
    let low = v - high * 1e9;
    // The quotient may be rounded: the remainder says which way.
    if (low < 0) {
      high--;
      low += 1e9;
    } else if (low >= 1e9) {
      high++;
      low -= 1e9;
    }
    this.digits(high, 1);
    this.digits(low, 9);
  }

  /** `n` (below 10^9) in at least `width` digits, zeros in front. */
  private digits(n: number, width: number): void {
    let count = 1;
    for (let t = n; t >= 10; t = (t / 10) | 0) count++;
    if (count < width) count = width;
    let at = (this.at += count);
    for (let i = 0; i < count; i++) {
      const q = (n / 10) | 0;
      this.buf[--at] = 0x30 + n - q * 10;
      n = q;
    }
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const NO_LABELS = Buffer.alloc(0);
/** Room for a value and the line's end, made before each line: a number
 *  takes at most 24 bytes ("-1.2345678901234567e+308"); a longer bigint
 *  makes its own. */
const VALUE_BYTES = 32;

/** Each line's text up to its value (name, labels, space), of a samples
 *  array given again from one scrape to the next: copied from one buffer,
 *  not gathered from each sample's objects, scattered in memory. */
interface KeptText {
  name: string;
  labels: readonly string[];
  bytes: Uint8Array;
  /** Where each sample's text ends in `bytes`. */
  ends: Uint32Array;
}

/** Samples arrays seen once, and those seen again with their text. */
const seen = new WeakSet<readonly Sample[]>();
const kept = new WeakMap<readonly Sample[], KeptText>();

function keptText(f: MetricFamily): KeptText | undefined {
  const k = kept.get(f.samples);
  return k?.name === f.name && k.labels === f.labels && k.ends.length === f.samples.length ? k : undefined;
}

/** Keep the text of `f`'s samples (checked already). */
function keepText(f: MetricFamily): KeptText {
  const name = Buffer.from(f.name);
  const labels = f.samples.map((s) => labelBytes(f, s));
  // A Uint8Array, not a Buffer: its subarray() is V8's own, cheaper than Buffer's.
  const bytes = new Uint8Array(labels.reduce((n, l) => n + name.length + l.length + 1, 0));
  const ends = new Uint32Array(labels.length);
  let at = 0;
  labels.forEach((l, i) => {
    bytes.set(name, at);
    bytes.set(l, at + name.length);
    at += name.length + l.length;
    bytes[at++] = 0x20;
    ends[i] = at;
  });
  const k = { name: f.name, labels: f.labels, bytes, ends };
  kept.set(f.samples, k);
  return k;
}

const labelBytes = (f: MetricFamily, s: Sample) => s.series?.bytes ?? (s.labels ? series(f.labels, s.labels).bytes : NO_LABELS);

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
    if (keptText(f)) continue;
    const declared = new Set(f.labels);
    for (const s of f.samples) {
      if (s.series && s.series.labels !== f.labels) throw new Error(`metric ${f.name}: a series made for labels (${s.series.labels.join(', ')})`);
      if (s.labels) for (const k in s.labels) if (!declared.has(k)) throw new Error(`metric ${f.name}: label ${JSON.stringify(k)} is not declared`);
    }
  }
  for (const f of families) {
    taken.add(f.name);
    out.write(`# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`);
    const k = keptText(f) ?? (seen.has(f.samples) ? keepText(f) : undefined);
    if (k) {
      out.keptLines(k, f.samples);
      continue;
    }
    seen.add(f.samples);
    const name = Buffer.from(f.name);
    for (const s of f.samples) out.line(name, labelBytes(f, s), s.value);
  }
}
