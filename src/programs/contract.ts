// What a subprogram is to the rest of xdplb: one descriptor per program
// folder (src/programs/<name>/index.ts), listed once in the registry
// (src/programs/index.ts). The service, the commands, the unit files, the
// package's lists and the man pages are driven by these descriptors; nothing
// outside a program's folder names its internals. Heavy parts (kernel code,
// the service handler, metrics) load on first use, so a short command pays
// only for what it runs.
import type { ActionSpec, Args, OptionSpec } from '../command.js';
import type { Iface } from '../root/pins.js';
import type { Placed, ProgramSpec } from '../root/place.js';

/** Syslog priorities journald understands (sd-daemon(3) prefixes). */
export type Priority = 'err' | 'warning' | 'notice' | 'info';
export type Log = (line: string, priority?: Priority) => void;

/** How a program reads its own keys of its config section (besides
 *  `enabled` and `slot`): pure validation, no kernel access. */
export interface SectionReader<S> {
  keys: readonly string[];
  /** Check and normalise the section's keys (absent ones are absent). An
   *  error's message starts with the key path inside the section and ': ',
   *  e.g. `vips[0].port: expected ...`, so the line can be found. */
  parse(value: Record<string, unknown>): S;
}

/** The program under `<command> run` (xdplb-<name>.service). */
export interface ServiceHandler<S> {
  /** Make the program run in `slot` on `ifaces` with `settings`:
   *  idempotent, only the difference written, nothing changed when the
   *  settings cannot be applied (checked before the first change). Returns
   *  what changed, one line each, for the log. */
  apply(ifaces: Iface[], slot: number, settings: S, log: Log): string[] | Promise<string[]>;
  /** Take it out of `ifaces` (its shared state stays). */
  detach(ifaces: Iface[], log: Log): void | Promise<void>;
  /** What is wrong with the kernel's state against `settings` on `ifaces`
   *  (empty when it is right): checked periodically by the service. */
  check(ifaces: Iface[], slot: number, settings: S): string[];
  /** The program's part of the STATUS= line. */
  status(ifaces: Iface[]): string;
  /** After the start, each reload and each reconciliation: whether the
   *  program is whole on every interface the service plans to run on
   *  (each there with its root array, the program in its slot, the kernel
   *  holding the settings). */
  settled?(whole: boolean): void;
  /** Given once the service runs: call `report` when the program's part of
   *  the STATUS= line changed on its own (health, a daemon it drives). */
  watch?(report: () => void): void;
  /** What is wrong outside the kernel (a daemon it drives, ...): shown as
   *  degraded, never repaired by apply(), never withholding the watchdog. */
  problems?(): string[];
  /** Work of its own that must end with the service (timers, sockets), and
   *  what must happen before the program leaves its slots; `leave`: a
   *  restart follows and the data plane stays. */
  stop?(leave: boolean): void | Promise<void>;
}

export type Labels = Record<string, string>;

/**
 * A series' labels as the exposition writes them (`{k="v",...}`), made once
 * and given again at every scrape by a collector of many series (the
 * balancer's 60,000): the writer then copies the text instead of escaping
 * and joining labels per sample. Valid for the families declared with this
 * very `labels` list (the FamilySpec's array, by identity).
 */
export interface Series {
  readonly labels: readonly string[];
  readonly text: string;
  /** `text` in UTF-8, which the writer copies. */
  readonly bytes: Buffer;
}

const LABEL_ESCAPES = /[\\"\n]/g;
const escapeLabel = (s: string) => (s.includes('\\') || s.includes('"') || s.includes('\n') ? s.replace(LABEL_ESCAPES, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : s);

/** `values` rendered for families declared with `labels`; a label not
 *  declared there is refused. */
export function series(labels: readonly string[], values: Labels): Series {
  let text = '';
  for (const k in values) {
    if (!labels.includes(k)) throw new Error(`label ${JSON.stringify(k)} is not declared (${labels.join(', ') || 'none'})`);
    text += `${text ? ',' : '{'}${k}="${escapeLabel(values[k])}"`;
  }
  text &&= `${text}}`;
  return { labels, text, bytes: Buffer.from(text) };
}

/** One value of a family: its labels as an object, or as a Series made
 *  earlier for the family's label list. */
export interface Sample {
  labels?: Labels;
  series?: Series;
  value: number | bigint;
}

/** A Prometheus metric as declared: what the documentation lists (the
 *  README's list is made from these) and what its samples may be labelled
 *  with. Counters are named `..._total` and never go down except when their
 *  source restarts. */
export interface FamilySpec {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels: readonly string[];
}

/** A declared metric with its samples as read at this scrape. */
export interface MetricFamily extends FamilySpec {
  /** The same array given again at a later scrape must hold the same
   *  samples in the same order, each with the same labels or series; only
   *  their values may change (the writer keeps the rest of their text). */
  samples: readonly Sample[];
}

/** Declared metrics by key: `family(F.key, samples)` makes a family. */
export function family(spec: FamilySpec, samples: readonly Sample[]): MetricFamily {
  return { ...spec, samples };
}

/** What a subprogram (or the root array) exports to Prometheus.
 *  `families()` is called at every scrape and reads the kernel then; when
 *  it throws, its families are left out of that scrape (and
 *  `xdplb_scrape_collector_success{collector}` says 0). */
export interface Collector {
  name: string;
  families(): MetricFamily[];
}

/** A struct shared with C: its size and the byte offset of every field
 *  this side reads or writes. */
export type Layout = { readonly size: number } & { readonly [field: string]: number };

export interface AttachHook<R> {
  options: readonly OptionSpec[];
  parse(args: Args): R;
  configure(placed: Placed[], request: R): Array<{ json: Record<string, unknown>; text: string }>;
  /** Warnings about the interfaces (sysctls the program needs, ...). */
  warnings?(placed: Placed[]): string[];
}

export interface Subprogram<S = any> extends ProgramSpec {
  /** One line: the man page's NAME, the unit's Description. */
  summary: string;
  /** Paragraphs for --help and the man page. */
  description: readonly string[];
  /** Its structs shared with C, by C name, in its object (checked against
   *  the object's BTF by one test). */
  layouts: Readonly<Record<string, Layout>>;
  section: SectionReader<S>;
  /** Options `--attach` takes besides --interface and --slot: checked
   *  before anything is placed, then applied to the placed programs (one
   *  config write each); per interface, what to add to the JSON result
   *  and to the line printed. */
  attach?: AttachHook<any>;
  /** The status: read (JSON-ready), and as text. */
  status: {
    read(ifnames?: string[]): unknown | Promise<unknown>;
    text(status: any): string;
  };
  /** After it was taken out of `ifaces` (by --detach or its service). */
  afterDetach?(ifaces: Iface[]): void;
  /** Options and actions of its own, besides attach, detach, status, run. */
  options: readonly OptionSpec[];
  actions: ReadonlyArray<ActionSpec<any>>;
  service(): Promise<ServiceHandler<S>>;
  /** Lines its unit (xdplb-<name>.service) has besides the template's, in
   *  [Unit] and [Service]: what it orders itself after, what more it may write. */
  unit?: { unit?: readonly string[]; service?: readonly string[] };
  /** Its metrics on the interfaces `ifnames()` names at each scrape. */
  metrics(ifnames: () => string[], opts: MetricsOptions): Collector;
  /** Every metric its collector may return. */
  metricFamilies: readonly FamilySpec[];
}

export interface MetricsOptions {
  /** At most this many per-prefix (or per-entry) series where a list can
   *  grow without bound: the top ones by hits. */
  top: number;
}
