// libbpf's own messages: kept in memory instead of printed, so a failure is
// one line that quotes the part that matters (XDPLB_DEBUG=1 prints them all).
import { c, register, alloc, view } from './ffi.js';

const LEVEL_DEBUG = 2;
const debug = !!process.env.XDPLB_DEBUG;
let lines: string[] = [];
let installed = false;
const scratch = alloc(4096);

function onPrint(level: number, fmt: string, args: unknown): number {
  if (level === LEVEL_DEBUG && !debug) return 0;
  const n = c.vsnprintf(scratch, 4096, fmt, args);
  const text = view(scratch, Math.max(0, Math.min(n, 4095))).toString('utf8');
  if (debug) process.stderr.write(`libbpf: ${text}`);
  lines.push(...text.split('\n').filter((l) => l.trim() !== ''));
  if (lines.length > 2000) lines = lines.slice(-1000);
  return 0;
}

export function installLogger(): void {
  if (installed) return;
  c.libbpf_set_print(register(onPrint));
  installed = true;
}

/** Forget what libbpf said so far: call before the operation to explain. */
export function resetLog(): void {
  lines = [];
}

/** The one line of libbpf's log that best explains a failure. */
export function explainLog(): string | undefined {
  const begin = lines.findIndex((l) => l.includes('-- BEGIN PROG LOAD LOG --'));
  const end = lines.findIndex((l) => l.includes('-- END PROG LOAD LOG --'));
  if (begin >= 0 && end > begin) {
    // The verifier's complaint is the last line before its summary.
    const body = lines.slice(begin + 1, end).filter(
      (l) => !/^(processed \d+ insns|verification time|stack depth)/.test(l),
    );
    const last = body.at(-1);
    if (last) return `verifier: ${last.trim()}`;
  }
  return lines.find((l) => !l.startsWith('libbpf: elf:'))?.replace(/^libbpf:\s*/, '').trim();
}
