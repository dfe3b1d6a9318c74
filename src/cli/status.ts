// The --status action every tool has: once, or with --watch redrawn every
// --interval seconds with per-second rates beside the totals (`--json
// --watch`: one JSON object per interval, newline-delimited).
import type { ActionSpec, Args, OptionSpec } from '../command.js';
import { optional, flag } from '../command.js';
import { UsageError } from '../errors.js';
import { toJson } from '../format.js';
import { stdoutStream } from '../sys/stdout.js';
import { parseInterfaceList } from '../net/interface.js';
import { rates, type RateTree } from '../rates.js';

export const WATCH_OPTIONS: OptionSpec[] = [
  { name: 'watch', alias: 'w', type: 'boolean', describe: 'Redraw every --interval seconds with per-second rates (with --json: one object per interval)' },
  { name: 'interval', type: 'string', placeholder: 'S', describe: 'Seconds between redraws with --watch (default 1)' },
];

export interface StatusSource {
  read(ifnames?: string[]): unknown | Promise<unknown>;
  /** The text form; with `rates`, rates beside the totals. */
  text(status: any, rates?: any): string;
}

interface Request {
  ifaces?: string[];
  watch: boolean;
  intervalMs: number;
}

export function statusAction(source: StatusSource, extra: Partial<ActionSpec<Request>> = {}): ActionSpec<Request> {
  return {
    name: 'status',
    describe: 'Show what is attached and its counters',
    accepts: ['interface', 'watch', 'interval'],
    ...extra,
    parse(args: Args): Request {
      const text = optional(args, 'interval');
      if (text !== undefined && !flag(args, 'watch')) throw new UsageError('--interval goes with --watch');
      const seconds = text === undefined ? 1 : Number(text);
      if (text !== undefined && (!/^(\d+\.?\d*|\.\d+)$/.test(text) || seconds < 0.1 || seconds > 3600)) {
        throw new UsageError(`invalid --interval '${text}': expected seconds from 0.1 to 3600`);
      }
      const ifText = optional(args, 'interface');
      return { ifaces: ifText === undefined ? undefined : parseInterfaceList(ifText), watch: flag(args, 'watch'), intervalMs: seconds * 1000 };
    },
    async run(req, ctx) {
      if (!req.watch) {
        const s = await source.read(req.ifaces);
        ctx.print(ctx.json ? toJson(s) : source.text(s));
        return 0;
      }
      return watch(source, req, ctx);
    },
  };
}

async function watch(source: StatusSource, req: Request, ctx: { json: boolean; print(t: string): void }): Promise<number> {
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let prev = await source.read(req.ifaces);
    let prevAt = performance.now();
    if (!ctx.json) draw(source.text(prev));
    while (!stop) {
      await new Promise((r) => setTimeout(r, req.intervalMs));
      if (stop) break;
      const next = await source.read(req.ifaces);
      const at = performance.now();
      const r: RateTree | undefined = rates(prev, next, (at - prevAt) / 1000);
      if (ctx.json) ctx.print(toJson({ time: new Date(), interval_s: (at - prevAt) / 1000, status: next, rates: r ?? null }, 0));
      else draw(source.text(next, r));
      prev = next;
      prevAt = at;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}

/** Redraw in place on a terminal (clear screen, home); a plain append
 *  otherwise, so that a log of it stays readable. */
function draw(text: string): void {
  const out = stdoutStream();
  if (out.isTTY) out.write('\x1b[H\x1b[2J');
  out.write(`${new Date().toISOString()}\n${text}\n`);
}
