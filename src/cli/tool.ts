// Running a tool from its declarative table (src/command.ts): the parser,
// --help, --version and bash completion come from the table, and every call
// is checked the same way in every tool: exactly one action; an option that
// does not belong to the action is refused; what the action needs is there;
// its request is checked whole before privileges are asked for and before
// anything touches the kernel.
import yargs, { type Argv } from 'yargs';
import type { ActionContext, ActionSpec, Args, OptionSpec, ToolSpec } from '../command.js';
import { UsageError } from '../errors.js';
import { VERSION, ABI_VERSION } from '../version.js';
import { requirePrivileges } from './main.js';
import { writeOut } from '../sys/stdout.js';

/** Options every tool has. */
export const GLOBAL_OPTIONS: OptionSpec[] = [
  { name: 'json', alias: 'j', type: 'boolean', describe: 'Print JSON' },
];
const ALWAYS = new Set(['json', 'help', 'version', '$0', '_']);

/** The option an action flag is: --attach (boolean), --apply FILE (string). */
export function actionOption(a: ActionSpec): OptionSpec {
  return { name: a.name, type: a.kind === 'value' ? 'string' : 'boolean', describe: a.describe, placeholder: a.placeholder };
}

export function allOptions(spec: ToolSpec): OptionSpec[] {
  const actions = spec.actions.filter((a) => a.kind !== 'command').map(actionOption);
  const seen = new Set<string>();
  return [...actions, ...spec.options, ...GLOBAL_OPTIONS].filter((o) => !seen.has(o.name) && seen.add(o.name));
}

/** The synopsis lines of an action. */
export function usageLines(spec: ToolSpec, a: ActionSpec): string[] {
  if (a.usage) return a.usage.map((u) => `${spec.name} ${u}`);
  const opts = new Map(spec.options.map((o) => [o.name, o]));
  const show = (name: string) => {
    const o = opts.get(name);
    return o?.type === 'string' ? `--${name} ${o.placeholder ?? 'VALUE'}` : `--${name}`;
  };
  const head = a.kind === 'command' ? a.name : a.kind === 'value' ? `--${a.name} ${a.placeholder ?? 'VALUE'}` : `--${a.name}`;
  const parts = [head, ...(a.requires ?? []).map(show), ...(a.accepts ?? []).map((n) => `[${show(n)}]`)];
  return [`${spec.name} ${parts.join(' ')}`];
}

/** yargs reads a lone `-` after a long flag as an argument of its own:
 *  bind `--output -` (stdout) to its string option first. */
function bindDash(spec: ToolSpec, args: string[]): string[] {
  const strings = new Set(allOptions(spec).filter((o) => o.type === 'string').flatMap((o) => [`--${o.name}`, ...(o.alias ? [`-${o.alias}`] : [])]));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (strings.has(args[i]) && args[i + 1] === '-') out.push(`${args[i++]}=-`);
    else out.push(args[i]);
  }
  return out;
}

export function parser(spec: ToolSpec, args: string[]): Argv {
  let y = yargs(bindDash(spec, args))
    .scriptName(spec.name)
    .parserConfiguration({ 'boolean-negation': false })
    .usage(['Usage:', ...spec.actions.flatMap((a) => usageLines(spec, a).map((l) => `  ${l}`)), '', ...spec.description].join('\n'))
    .strict()
    .version(false)
    .option('version', { type: 'boolean', describe: 'Print the version and the ABI of the pinned state it reads' })
    .help('help')
    .alias('help', 'h')
    .completion('completion', 'Print a bash completion script (the package installs it)')
    .fail((msg, err) => {
      throw err ?? new UsageError(`${msg} (see ${spec.name} --help)`);
    });
  // The terminal's width is process.stdout's (a stream made on first use,
  // ~6 ms of a short command): asked only when there is help to lay out.
  if (args.some((a) => a === '--help' || a === '-h')) y = y.wrap(Math.min(100, process.stdout.columns || 100));
  for (const o of allOptions(spec)) {
    y = y.option(o.name, { type: o.type, describe: o.describe, ...(o.alias ? { alias: o.alias } : {}) });
  }
  for (const a of spec.actions.filter((x) => x.kind === 'command')) y = y.command(a.name, a.describe);
  return y;
}

function given(argv: Record<string, unknown>, name: string): boolean {
  const v = argv[name];
  return v !== undefined && v !== false;
}

/** The action of this call, and its arguments, checked against the table. */
export function select(spec: ToolSpec, argv: Record<string, unknown> & { _: Array<string | number> }): { action: ActionSpec; args: Args } {
  const options = allOptions(spec);
  const byName = new Map(options.map((o) => [o.name, o]));
  const flags = spec.actions.filter((a) => a.kind !== 'command');
  const word = argv._[0] === undefined ? undefined : String(argv._[0]);
  if (argv._.length > 1) throw new UsageError(`unexpected argument '${argv._[1]}' (see ${spec.name} --help)`);
  let action: ActionSpec | undefined;
  if (word !== undefined) {
    action = spec.actions.find((a) => a.kind === 'command' && a.name === word);
    if (!action) throw new UsageError(`unknown command '${word}' (see ${spec.name} --help)`);
    const stray = flags.find((a) => given(argv, a.name));
    if (stray) throw new UsageError(`${word} takes no --${stray.name}: it reads what to do from --config`);
  } else {
    let present = flags.filter((a) => given(argv, a.name));
    // An action flag that another present action takes as an option is
    // that option here (--status --clear, --vip-add ... --weight 2).
    if (present.length > 1) {
      present = present.filter((a) => !present.some((b) => b !== a && [...(b.requires ?? []), ...(b.accepts ?? [])].includes(a.name)));
    }
    if (present.length !== 1) {
      const names = flags.map((a) => `--${a.name}`).join(', ');
      throw new UsageError(
        present.length
          ? `choose one of ${names}; got ${present.map((a) => `--${a.name}`).join(' and ')}`
          : `nothing to do: expected one of ${names}${spec.actions.some((a) => a.kind === 'command') ? ` or ${spec.actions.filter((a) => a.kind === 'command').map((a) => a.name).join(', ')}` : ''} (see ${spec.name} --help)`,
      );
    }
    action = present[0];
  }
  const allowed = new Set([action.name, ...(action.requires ?? []), ...(action.accepts ?? [])]);
  const args: Record<string, string | boolean | undefined> = {};
  for (const o of options) {
    const v = argv[o.name];
    if (!given(argv, o.name)) continue;
    if (!ALWAYS.has(o.name) && !allowed.has(o.name)) {
      throw new UsageError(`--${o.name} does not go with ${action.kind === 'command' ? action.name : `--${action.name}`} (see ${spec.name} --help)`);
    }
    if (Array.isArray(v)) throw new UsageError(`--${o.name} given more than once: expected one value`);
    args[o.name] = o.type === 'boolean' ? true : String(v);
  }
  for (const r of action.requires ?? []) {
    if (args[r] === undefined || args[r] === '') {
      const o = byName.get(r);
      throw new UsageError(`${action.kind === 'command' ? action.name : `--${action.name}`} needs --${r}${o?.placeholder ? ` ${o.placeholder}` : ''}`);
    }
  }
  if (action.kind === 'value' && (args[action.name] === '' || args[action.name] === undefined)) {
    throw new UsageError(`--${action.name} needs a value${action.placeholder ? ` (${action.placeholder})` : ''}`);
  }
  return { action, args };
}

/** Parse, check, then run one call of the tool; returns its exit code. */
export async function runTool(spec: ToolSpec, args: string[]): Promise<number> {
  const argv = (await parser(spec, args).parse()) as Record<string, unknown> & { _: Array<string | number> };
  if (argv.version) {
    writeOut(`${spec.name} ${VERSION} (ABI ${ABI_VERSION})\n`);
    return 0;
  }
  const { action, args: checked } = select(spec, argv);
  const request = action.parse(checked);
  if (!action.unprivileged) requirePrivileges();
  const ctx: ActionContext = {
    json: checked.json === true,
    command: spec.name,
    print: (text) => writeOut(`${text}\n`),
    warn: (text) => process.stderr.write(`${spec.name}: warning: ${text}\n`),
  };
  return (await action.run(request, ctx)) ?? 0;
}
