// xdp-sampler: a packet sampler in a slot of the root array, verdict samples
// from every slot, and captures of both to pcapng or pcap.
import { RUN_DESCRIPTION, RUN_OPTION, runRequest, runSection } from './run.js';
import { accessSync, closeSync, constants, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import yargs from 'yargs';
import { UsageError, XdplbError } from '../errors.js';
import { parseInterfaceList } from '../net/interface.js';
import { parseSlot } from '../root/slot.js';
import { SAMPLER, parseRate, parseSnaplen } from '../programs/sampler/config.js';
import { Capture } from '../programs/sampler/capture.js';
import { FORMATS, type Format } from '../programs/sampler/pcap.js';
import { attachSampler, detachSampler, setRate, status, type SamplerStatus } from '../programs/sampler/sampler.js';
import { table, toJson } from './format.js';
import { EXIT_OK, finishParser, requirePrivileges } from './main.js';

export const COMMAND = 'xdp-sampler';
const ACTION_FLAGS = ['attach', 'detach', 'set-rate', 'status', 'capture'] as const;
type Action = (typeof ACTION_FLAGS)[number];

/** Which optional flags each action takes (--interface and --json aside). */
const FLAGS: Record<Action, string[]> = {
  attach: ['slot', 'rate', 'verdict-rate', 'snaplen'],
  detach: [],
  'set-rate': ['verdict-rate', 'snaplen'],
  status: [],
  capture: ['output', 'format', 'count', 'duration'],
};

/** yargs reads a lone `-` after a long flag as an argument of its own: bind
 *  `--output -` (stdout) to its flag first. */
function bindStdout(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if ((args[i] === '--output' || args[i] === '-o') && args[i + 1] === '-') out.push(`${args[i++]}=-`);
    else out.push(args[i]);
  }
  return out;
}

export function parser(args: string[]) {
  return finishParser(
    yargs(bindStdout(args))
      .scriptName(COMMAND)
      .usage(
        [
          'Usage:',
          '  xdp-sampler --attach --interface eth0[,eth1] [--slot 1] [--rate 1000] [--verdict-rate 100] [--snaplen 256]',
          '  xdp-sampler --set-rate N --interface eth0[,eth1] [--verdict-rate N] [--snaplen BYTES]',
          '  xdp-sampler --detach --interface eth0[,eth1]',
          '  xdp-sampler --capture --interface eth0[,eth1] --output FILE|- [--format pcapng|pcap] [--count N] [--duration S]',
          '  xdp-sampler --status [--interface eth0[,eth1]] [--json]',
          '',
          'The sampler copies 1 in N packets (at random; 0 is off) into the interface\'s',
          'ring buffer and passes every packet on. Final verdicts other than XDP_PASS of',
          'every slot are sampled into the same ring buffer at the verdict rate.',
          '--capture writes both to a capture file; `-o -` streams it to stdout.',
        ].join('\n'),
      )
      .options({
        attach: { type: 'boolean', describe: 'Put the sampler into a slot of the interfaces\' root arrays' },
        detach: { type: 'boolean', describe: 'Take the sampler out and turn verdict samples off' },
        'set-rate': { type: 'string', describe: 'Sample 1 in N packets (0: off), without reloading' },
        status: { type: 'boolean', describe: 'Show rates, snaplen and sample counters' },
        capture: { type: 'boolean', describe: 'Write samples to a capture file as they arrive' },
        interface: { alias: 'i', type: 'string', describe: 'Interface name(s), comma separated' },
        slot: { alias: 's', type: 'string', describe: `Slot for the sampler, 0..7 (default: where it is, else ${SAMPLER.defaultSlot})` },
        rate: { alias: 'r', type: 'string', describe: 'Sample 1 in N packets; 0 is off (default 1000)' },
        'verdict-rate': { type: 'string', describe: 'Sample 1 in N final non-PASS verdicts of every slot; 0 is off (default 0)' },
        snaplen: { type: 'string', describe: 'Bytes of each packet to capture, 1..65535 (default 256)' },
        output: { alias: 'o', type: 'string', describe: 'Capture file, or - for stdout' },
        format: { alias: 'f', type: 'string', default: 'pcapng', describe: 'pcapng or pcap' },
        count: { alias: 'c', type: 'string', describe: 'Stop after N samples' },
        duration: { alias: 'd', type: 'string', describe: 'Stop after S seconds' },
        json: { alias: 'j', type: 'boolean', describe: 'Print JSON' },
      })
      .options(RUN_OPTION)
      .command('run', RUN_DESCRIPTION),
    COMMAND,
  );
}

type Args = Awaited<ReturnType<ReturnType<typeof parser>['parse']>>;

function one(argv: Args, name: string): string | undefined {
  const value = argv[name];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw new UsageError(`--${name} given more than once: expected one value`);
  return String(value);
}

function positive(text: string, flag: string, what: string, whole: boolean): number {
  const ok = whole ? /^\d+$/.test(text) : /^(\d+\.?\d*|\.\d+)$/.test(text);
  if (!ok || Number(text) <= 0 || (whole && Number(text) > 0x7fffffff)) {
    throw new UsageError(`invalid ${flag} '${text}': expected ${what}`);
  }
  return Number(text);
}

/** Where the capture goes, checked without creating anything. */
function checkOutput(path: string): void {
  const target = resolve(path);
  try {
    if (existsSync(target)) {
      if (statSync(target).isDirectory()) throw new Error('a directory');
      accessSync(target, constants.W_OK);
    } else {
      accessSync(dirname(target), constants.W_OK | constants.X_OK);
    }
  } catch {
    throw new XdplbError(`cannot write capture file '${path}': expected a writable file path or - for stdout`);
  }
}

/** Check the whole request before anything touches the kernel. */
export function validate(argv: Args) {
  const action = ACTION_FLAGS.filter((a) => argv[a] !== undefined && argv[a] !== false);
  if (action.length !== 1) {
    throw new UsageError(
      action.length
        ? `choose one of --${ACTION_FLAGS.join(', --')}; got --${action.join(' and --')}`
        : `nothing to do: expected one of --${ACTION_FLAGS.join(', --')} (see xdp-sampler --help)`,
    );
  }
  const act = action[0];
  for (const flag of Object.values(FLAGS).flat()) {
    if (flag !== 'format' && argv[flag] !== undefined && !FLAGS[act].includes(flag)) {
      throw new UsageError(`--${flag} does not go with --${act}`);
    }
  }
  const ifaceText = one(argv, 'interface');
  if (ifaceText === '' || (ifaceText === undefined && act !== 'status')) throw new UsageError(`--${act} needs --interface`);
  const ifaces = ifaceText === undefined ? undefined : parseInterfaceList(ifaceText);
  const opt = <T>(name: string, parse: (text: string) => T): T | undefined => {
    const text = one(argv, name);
    return text === undefined ? undefined : parse(text);
  };
  const settings = {
    rate: opt('rate', (t) => parseRate(t, 'rate')),
    verdictRate: opt('verdict-rate', (t) => parseRate(t, 'verdict rate')),
    snaplen: opt('snaplen', parseSnaplen),
  };
  switch (act) {
    case 'attach':
      return { action: act, ifaces: ifaces!, slot: opt('slot', parseSlot), settings };
    case 'detach':
      return { action: act, ifaces: ifaces! };
    case 'set-rate':
      return { action: act, ifaces: ifaces!, settings: { ...settings, rate: parseRate(one(argv, 'set-rate'), 'rate') } };
    case 'capture': {
      const format = one(argv, 'format')!;
      if (!FORMATS.includes(format as Format)) throw new UsageError(`invalid format '${format}': expected pcapng or pcap`);
      const output = one(argv, 'output');
      if (!output) throw new UsageError('--capture needs --output FILE, or --output - for stdout');
      return {
        action: act, ifaces: ifaces!, format: format as Format, output,
        count: opt('count', (t) => positive(t, 'count', 'a whole number of samples from 1', true)),
        durationMs: opt('duration', (t) => positive(t, 'duration', 'a number of seconds above 0', false) * 1000),
      };
    }
    case 'status':
      return { action: act, ifaces };
  }
}

const rate = (n: number | null) => (n === null ? '-' : n === 0 ? 'off' : `1/${n}`);

export function formatStatus(all: Record<string, SamplerStatus | { error: string }>): string {
  const entries = Object.entries(all);
  if (!entries.length) return 'No root array attached to any interface.';
  const rows = entries.map(([ifname, s]) =>
    'error' in s
      ? [ifname, s.error, '', '', '', '', '', '']
      : [
          ifname, s.sampler_loaded ? `${s.slot}` : 'not attached', rate(s.rate), rate(s.verdict_rate),
          s.snaplen === s.captured_max ? s.snaplen : `${s.snaplen} (max ${s.captured_max})`,
          s.samples.packets, s.samples.verdicts, s.samples.lost,
        ],
  );
  return table(['INTERFACE', 'SLOT', 'RATE', 'VERDICT RATE', 'SNAPLEN', 'PACKET SAMPLES', 'VERDICT SAMPLES', 'LOST (RING FULL)'], rows);
}

/** Write a capture to a file (opened when the header is ready) or stdout. */
async function capture(req: Extract<ReturnType<typeof validate>, { action: 'capture' }>): Promise<number> {
  const toStdout = req.output === '-';
  if (!toStdout) checkOutput(req.output);
  let fd: number | null = null;
  let cap: Capture | null = null;
  let broken = false;
  const out = (bytes: Buffer) => {
    if (toStdout) {
      if (!broken) process.stdout.write(bytes);
      return;
    }
    if (fd === null) fd = openSync(req.output, 'w', 0o600);
    writeSync(fd, bytes);
  };
  // The reader went away (e.g. `| tcpdump -c 5`): a normal end.
  const onPipeError = (err: NodeJS.ErrnoException) => {
    broken = true;
    if (err.code !== 'EPIPE') process.stderr.write(`${COMMAND}: cannot write to stdout: ${err.message}\n`);
    cap?.stop();
  };
  process.stdout.on('error', onPipeError);
  const stop = () => cap?.stop();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    cap = new Capture({ ifnames: req.ifaces, format: req.format, count: req.count, durationMs: req.durationMs }, out);
    const result = await cap.run();
    process.stderr.write(
      `${COMMAND}: ${result.written} samples written to ${toStdout ? 'stdout' : req.output}, ` +
        `${result.lost} lost in the kernel (ring buffer full)` +
        `${result.malformed ? `, ${result.malformed} malformed records skipped` : ''}\n`,
    );
    return EXIT_OK;
  } finally {
    cap?.close();
    if (fd !== null) closeSync(fd);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export async function main(args: string[]): Promise<number> {
  const argv = await parser(args).parse();
  const config = runRequest(COMMAND, argv, ACTION_FLAGS);
  if (config !== null) return runSection(COMMAND, config, async () => (await import('../programs/sampler/service.js')).SAMPLER_SERVICE);
  const req = validate(argv);
  requirePrivileges();
  const print = (text: string) => process.stdout.write(`${text}\n`);
  switch (req.action) {
    case 'attach': {
      const results = attachSampler(req.ifaces, req.slot, req.settings);
      if (argv.json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { slot: r.slot, id: r.id, changed: r.changed }]))));
      else for (const r of results) print(r.changed ? `Attached xdp_sampler (id ${r.id}) to slot ${r.slot} of ${r.ifname}.` : `xdp_sampler already in slot ${r.slot} of ${r.ifname}; settings applied.`);
      return EXIT_OK;
    }
    case 'detach': {
      const results = detachSampler(req.ifaces);
      if (argv.json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { attached: false, changed: r.changed }]))));
      else for (const r of results) print(r.changed ? `Detached xdp_sampler from ${r.ifname}.` : `xdp_sampler not attached to ${r.ifname}; nothing to detach.`);
      return EXIT_OK;
    }
    case 'set-rate': {
      setRate(req.ifaces, req.settings);
      if (argv.json) print(toJson(status(req.ifaces)));
      else print(`${req.settings.rate ? `Sampling 1 in ${req.settings.rate} packets` : 'Sampling off'} on ${req.ifaces.join(', ')}.`);
      return EXIT_OK;
    }
    case 'status': {
      const all = status(req.ifaces);
      print(argv.json ? toJson(all) : formatStatus(all));
      return EXIT_OK;
    }
    case 'capture':
      return capture(req);
  }
  return EXIT_OK;
}
