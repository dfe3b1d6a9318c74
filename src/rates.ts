// Live rates for `--watch`: two snapshots of a status object (records and
// arrays whose counters are bigints) and the seconds between them give the
// same shape with each counter turned into a rate per second. Counters under
// a `bytes` key (or a key ending in `_bytes`) become bits per second, under
// `bits` (`_bits`) in the result; every other counter is per second as it is
// (packets per second for `statistics`).
//
// A counter that cannot give a rate for the interval is null, shown as "-":
// one that went backwards (`--clear`), one whose program changed (its `id`,
// `root_id` or `load_time` differs, or appeared or went: a program replaced
// in its slot, a slot filled or emptied, a root re-attached), and one that
// the first snapshot did not have. The counter restarted at an unknown moment inside the interval,
// so any figure would be a guess; the next interval is exact again. A
// counter the second snapshot lacks has no rate at all. Arrays keep the
// second snapshot's positions (null where an element holds no counter).
// Cleared and then counted past its old value within one interval, a counter
// cannot be told from one that kept counting: that rate is too low.

export type RateTree = number | null | RateTree[] | { [key: string]: RateTree };

type Path = ReadonlyArray<string | number>;

export interface RateOptions {
  /** Fields whose change means the counters under their object restarted. */
  identity?: readonly string[];
  /** How the elements of an array are paired between the snapshots: by this
   *  key when it returns one, else by position. By default, `slot` (a
   *  status's `subprograms` lists the slots). */
  elementKey?: (element: unknown, path: Path) => string | undefined;
}

const IDENTITY = ['id', 'root_id', 'load_time'];

function defaultElementKey(element: unknown): string | undefined {
  const slot = isRecord(element) ? element.slot : undefined;
  return typeof slot === 'number' ? String(slot) : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  return a === b;
}

function bytesKey(key: string): string | undefined {
  if (key === 'bytes') return 'bits';
  if (key.endsWith('_bytes')) return `${key.slice(0, -'_bytes'.length)}_bits`;
  return undefined;
}

/** Every counter of `next` as null: no earlier value to compare with. */
function unknown(next: unknown): RateTree | undefined {
  if (typeof next === 'bigint') return null;
  if (Array.isArray(next)) return next.map((e) => unknown(e) ?? null);
  if (!isRecord(next)) return undefined;
  const out: Record<string, RateTree> = {};
  for (const [k, v] of Object.entries(next)) {
    const r = unknown(v);
    if (r !== undefined) out[bytesKey(k) ?? k] = r;
  }
  return out;
}

function walk(prev: unknown, next: unknown, seconds: number, scale: number, path: Path, opts: Required<RateOptions>): RateTree | undefined {
  if (typeof next === 'bigint') {
    if (typeof prev !== 'bigint' || next < prev) return null;
    return (Number(next - prev) * scale) / seconds;
  }
  if (prev === undefined) return unknown(next);
  if (Array.isArray(next)) {
    const before = new Map<string, unknown>();
    if (Array.isArray(prev)) prev.forEach((e, i) => before.set(opts.elementKey(e, [...path, i]) ?? `#${i}`, e));
    return next.map((e, i) => walk(before.get(opts.elementKey(e, [...path, i]) ?? `#${i}`), e, seconds, scale, [...path, i], opts) ?? null);
  }
  if (!isRecord(next)) return undefined;
  const old = isRecord(prev) ? prev : {};
  if (opts.identity.some((k) => (k in next || k in old) && !same(old[k], next[k]))) return unknown(next);
  const out: Record<string, RateTree> = {};
  for (const [k, v] of Object.entries(next)) {
    const bits = bytesKey(k);
    const r = walk(old[k], v, seconds, bits ? 8 : scale, [...path, k], opts);
    if (r !== undefined) out[bits ?? k] = r;
  }
  return out;
}

/** Per-second rates of every counter in `next` since `prev`, taken
 *  `seconds` apart (see the top of this file for nulls and bits). */
export function rates(prev: unknown, next: unknown, seconds: number, opts: RateOptions = {}): RateTree | undefined {
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw new RangeError(`interval: expected a positive number of seconds, got ${seconds}`);
  return walk(prev, next, seconds, 1, [], { identity: opts.identity ?? IDENTITY, elementKey: opts.elementKey ?? defaultElementKey });
}

const PREFIXES = ['', 'k', 'M', 'G', 'T', 'P'];

/** `1.2 Mpps`, `950 kbit/s`, `0 pps`; null is `-`. One decimal below 10,
 *  none from 10 on, and SI prefixes (steps of 1000), as link speeds use. */
export function formatRate(value: number | null, unit: string): string {
  if (value === null) return '-';
  const digits = (x: number) => (x !== 0 && Number(x.toFixed(1)) < 10 ? 1 : 0);
  let i = 0;
  let v = value;
  // Step up while the figure as printed would read 1000 or more.
  while (i < PREFIXES.length - 1 && Number(v.toFixed(digits(v))) >= 1000) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(digits(v))} ${PREFIXES[i]}${unit}`;
}

export const formatPps = (value: number | null): string => formatRate(value, 'pps');
export const formatBits = (value: number | null): string => formatRate(value, 'bit/s');

/** A total with its rate beside it when there is one (--watch): `1234
 *  (56 pps)`; undefined `rate` (not watching) shows the total alone. */
export function withRate(total: bigint | number, rate: number | null | undefined, unit: 'pps' | 'bit/s' | '/s' = 'pps'): string {
  if (rate === undefined) return String(total);
  return `${total} (${unit === '/s' ? `${formatRate(rate, '')}/s`.replace(' /s', '/s') : formatRate(rate, unit)})`;
}

/** Look a rate up along a path of keys and indexes; undefined when the
 *  rates tree (or the path in it) is absent. */
export function rateAt(rates: RateTree | undefined, ...path: Array<string | number>): number | null | undefined {
  let at: RateTree | undefined = rates;
  for (const key of path) {
    if (at === null || at === undefined || typeof at !== 'object') return at === null ? null : undefined;
    at = (at as Record<string | number, RateTree>)[key];
  }
  return typeof at === 'number' || at === null ? at : undefined;
}
