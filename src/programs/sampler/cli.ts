// xdp-sampler's own options and actions (attach, detach, status and run are
// every subprogram's; see src/cli/subprogram.ts).
import { accessSync, closeSync, constants, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { stdoutStream } from '../../sys/stdout.js';
import { dirname, extname, resolve } from 'node:path';
import { optional, required, type ActionSpec, type Args, type OptionSpec } from '../../command.js';
import { UsageError, XdplbError } from '../../errors.js';
import { toJson, table } from '../../format.js';
import { parseInterfaceList } from '../../net/interface.js';
import type { AttachHook } from '../contract.js';
import { rateAt, withRate, type RateTree } from '../../rates.js';
import { parseRate, parseSnaplen } from './config.js';
import { Capture } from './capture.js';
import { FORMATS, type Format } from './pcap.js';
import { configureSampler, setRate, status, type SamplerStatus, type Settings } from './sampler.js';

export const ATTACH_OPTIONS: OptionSpec[] = [
  { name: 'rate', alias: 'r', type: 'string', placeholder: 'N', describe: 'Sample 1 in N packets; 0 is off (default 1000)' },
  { name: 'verdict-rate', type: 'string', placeholder: 'N', describe: 'Sample 1 in N final non-PASS verdicts of every slot; 0 is off (default 0)' },
  { name: 'snaplen', type: 'string', placeholder: 'BYTES', describe: 'Bytes of each packet to capture, 1..65535 (default 256)' },
];

export const OPTIONS: OptionSpec[] = [
  { name: 'output', alias: 'o', type: 'string', placeholder: 'FILE|-', describe: 'Capture file, or - for stdout' },
  { name: 'format', alias: 'f', type: 'string', placeholder: 'pcapng|pcap', describe: 'Capture format (default: pcap for a .pcap file, else pcapng)' },
  { name: 'count', alias: 'c', type: 'string', placeholder: 'N', describe: 'Stop after N samples' },
  { name: 'duration', alias: 'd', type: 'string', placeholder: 'S', describe: 'Stop after S seconds' },
];

function settings(args: Args): Settings {
  const opt = <T>(name: string, parse: (text: string) => T): T | undefined => {
    const text = optional(args, name);
    return text === undefined ? undefined : parse(text);
  };
  return {
    rate: opt('rate', (t) => parseRate(t, 'rate')),
    verdictRate: opt('verdict-rate', (t) => parseRate(t, 'verdict rate')),
    snaplen: opt('snaplen', parseSnaplen),
  };
}

export const ATTACH: AttachHook<Settings> = {
  options: ATTACH_OPTIONS,
  parse: settings,
  configure(placed, s) {
    configureSampler(placed, s);
    return placed.map(() => ({ json: {}, text: '' }));
  },
};

function positive(text: string, flag: string, what: string, whole: boolean): number {
  const ok = whole ? /^\d+$/.test(text) : /^(\d+\.?\d*|\.\d+)$/.test(text);
  if (!ok || Number(text) <= 0 || (whole && Number(text) > 0x7fffffff)) {
    throw new UsageError(`invalid --${flag} '${text}': expected ${what}`);
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

/** The format: as asked, or as the file's name says (.pcap is classic
 *  pcap); a name that says one and a --format that says the other is a
 *  mistake worth stopping on. */
function captureFormat(output: string, asked: string | undefined): Format {
  if (asked !== undefined && !FORMATS.includes(asked as Format)) throw new UsageError(`invalid --format '${asked}': expected pcapng or pcap`);
  const ext = output === '-' ? '' : extname(output).toLowerCase();
  const named = ext === '.pcap' ? 'pcap' : ext === '.pcapng' ? 'pcapng' : undefined;
  if (asked && named && asked !== named) {
    throw new UsageError(`--output '${output}' names a ${named} file but --format is ${asked}: rename it or drop --format`);
  }
  return (asked as Format | undefined) ?? named ?? 'pcapng';
}

interface CaptureRequest {
  ifaces: string[];
  format: Format;
  output: string;
  count?: number;
  durationMs?: number;
}

/** Write a capture to a file (opened when the header is ready) or stdout. */
async function capture(req: CaptureRequest, command: string): Promise<number> {
  const toStdout = req.output === '-';
  if (!toStdout) checkOutput(req.output);
  let fd: number | null = null;
  let cap: Capture | null = null;
  let broken = false;
  const stdout = toStdout ? stdoutStream() : null;
  const out = (bytes: Buffer) => {
    if (stdout) {
      if (!broken) stdout.write(bytes);
      return;
    }
    if (fd === null) fd = openSync(req.output, 'w', 0o600);
    writeSync(fd, bytes);
  };
  // The reader went away (e.g. `| tcpdump -c 5`): a normal end.
  const onPipeError = (err: NodeJS.ErrnoException) => {
    broken = true;
    if (err.code !== 'EPIPE') process.stderr.write(`${command}: cannot write to stdout: ${err.message}\n`);
    cap?.stop();
  };
  stdout?.on('error', onPipeError);
  const stop = () => cap?.stop();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    cap = new Capture({ ifnames: req.ifaces, format: req.format, count: req.count, durationMs: req.durationMs }, out);
    const result = await cap.run();
    process.stderr.write(
      `${command}: ${result.written} samples written to ${toStdout ? 'stdout' : req.output}, ` +
        `${result.lost} lost in the kernel (ring buffer full)` +
        `${result.malformed ? `, ${result.malformed} malformed records skipped` : ''}\n`,
    );
    return 0;
  } finally {
    cap?.close();
    if (fd !== null) closeSync(fd);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

const rate = (n: number | null) => (n === null ? '-' : n === 0 ? 'off' : `1/${n}`);

export function formatStatus(all: Record<string, SamplerStatus>, rates?: RateTree): string {
  const entries = Object.entries(all);
  if (!entries.length) return 'No root array attached to any interface.';
  const rows = entries.map(([ifname, s]) => [
    ifname, s.sampler_loaded ? `${s.slot}` : 'not attached', rate(s.rate), rate(s.verdict_rate),
    s.snaplen === s.captured_max ? s.snaplen : `${s.snaplen} (max ${s.captured_max})`,
    ...(['packets', 'verdicts', 'lost'] as const).map((k) => withRate(s.samples[k], rateAt(rates, ifname, 'samples', k), '/s')),
  ]);
  return table(['INTERFACE', 'SLOT', 'RATE', 'VERDICT RATE', 'SNAPLEN', 'PACKET SAMPLES', 'VERDICT SAMPLES', 'LOST (RING FULL)'], rows);
}

export const ACTIONS: Array<ActionSpec<any>> = [
  {
    name: 'set-rate',
    kind: 'value',
    placeholder: 'N',
    describe: 'Sample 1 in N packets (0: off), without reloading',
    requires: ['interface'],
    accepts: ['verdict-rate', 'snaplen'],
    parse: (args) => ({
      ifaces: parseInterfaceList(required(args, 'interface')),
      settings: { ...settings(args), rate: parseRate(required(args, 'set-rate'), 'rate') },
    }),
    run(req: { ifaces: string[]; settings: Settings & { rate: number } }, ctx) {
      setRate(req.ifaces, req.settings);
      if (ctx.json) ctx.print(toJson(status(req.ifaces)));
      else ctx.print(`${req.settings.rate ? `Sampling 1 in ${req.settings.rate} packets` : 'Sampling off'} on ${req.ifaces.join(', ')}.`);
    },
  },
  {
    name: 'capture',
    describe: 'Write samples to a capture file as they arrive',
    requires: ['interface', 'output'],
    accepts: ['format', 'count', 'duration'],
    usage: ['--capture --interface eth0[,eth1] --output FILE|- [--format pcapng|pcap] [--count N] [--duration S]'],
    parse(args): CaptureRequest {
      const output = required(args, 'output');
      const count = optional(args, 'count');
      const duration = optional(args, 'duration');
      return {
        ifaces: parseInterfaceList(required(args, 'interface')),
        output,
        format: captureFormat(output, optional(args, 'format')),
        count: count === undefined ? undefined : positive(count, 'count', 'a whole number of samples from 1', true),
        durationMs: duration === undefined ? undefined : positive(duration, 'duration', 'a number of seconds above 0', false) * 1000,
      };
    },
    run: (req: CaptureRequest, ctx) => capture(req, ctx.command),
  },
];
