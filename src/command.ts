// The declarative shape of a command line tool: its options and its actions
// (exactly one per call), from which the CLI builds the parser, checks every
// call (a flag that does not belong to the action is refused), writes the
// help, the man page and the shell completion. Pure data and small checks,
// so that subprograms can declare their actions without depending on the
// CLI layer.
import { UsageError } from './errors.js';

export interface OptionSpec {
  name: string;
  alias?: string;
  type: 'string' | 'boolean';
  describe: string;
  /** The value's name in synopses and man pages (FILE, N, IFNAME[,IFNAME]). */
  placeholder?: string;
}

/** The parsed flags of one call: strings, booleans, or absent. */
export type Args = Readonly<Record<string, string | boolean | undefined>>;

export interface ActionContext {
  /** Print a line on stdout. */
  print(text: string): void;
  /** Print `<command>: warning: <text>` on stderr. */
  warn(text: string): void;
  json: boolean;
  command: string;
}

export interface ActionSpec<R = unknown> {
  /** The flag that chooses it (`--attach`), or the command word (`run`). */
  name: string;
  /** `flag`: --name; `value`: --name VALUE; `command`: a word (run). */
  kind?: 'flag' | 'value' | 'command';
  placeholder?: string;
  describe: string;
  /** Options this action cannot do without. */
  requires?: readonly string[];
  /** Options it also takes (beyond --json, --help). */
  accepts?: readonly string[];
  /** Synopsis lines for help and man page (generated when absent). */
  usage?: readonly string[];
  /** Needs no root privileges (help-like actions). */
  unprivileged?: boolean;
  /** Check the whole request (files it names included) before anything
   *  touches the kernel; throws UsageError (exit 2) on bad input. */
  parse(args: Args): R;
  /** Do it; returns the exit code (0 when nothing is returned). */
  run(request: R, ctx: ActionContext): number | void | Promise<number | void>;
}

export interface ToolSpec {
  /** The command's name: xdp-filter. */
  name: string;
  /** One line for NAME in the man page. */
  summary: string;
  /** Paragraphs for --help and DESCRIPTION. */
  description: readonly string[];
  options: readonly OptionSpec[];
  actions: ReadonlyArray<ActionSpec<any>>;
  /** Man page sections beyond the generated ones. */
  sections?: ReadonlyArray<{ title: string; paragraphs: readonly string[] }>;
}

// ---- value checks every tool uses ----

/** A string option's value; undefined when absent. */
export function optional(args: Args, name: string): string | undefined {
  const v = args[name];
  if (v === undefined || v === false) return undefined;
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return v;
}

/** A string option the action needs (the table makes sure it was given). */
export function required(args: Args, name: string): string {
  const v = optional(args, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} needs a value`);
  return v;
}

export function flag(args: Args, name: string): boolean {
  return args[name] === true;
}

/** A whole number in [min, max], or a one-line error naming the flag. */
export function wholeNumber(text: string, name: string, min: number, max: number, what = `a whole number from ${min} to ${max}`): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`invalid --${name} '${text}': expected ${what}`);
  }
  return Number(text);
}
