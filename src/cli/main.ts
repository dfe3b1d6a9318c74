// The frame every command runs in: privileges, one-line errors, exit codes.
import { readFileSync } from 'node:fs';
import { BpfError } from '../libbpf/errors.js';
import { UsageError, XdplbError } from '../errors.js';
import { outputFlushed } from '../sys/stdout.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const CAPS: Record<string, number> = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_BPF: 39 };

/** Capabilities this process lacks, from /proc/self/status. */
export function missingCapabilities(status = readFileSync('/proc/self/status', 'utf8')): string[] {
  const eff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'));
  return Object.entries(CAPS).filter(([, bit]) => !(eff & (1n << BigInt(bit)))).map(([name]) => name);
}

export function requirePrivileges(): void {
  const missing = missingCapabilities();
  if (missing.length) {
    throw new XdplbError(`needs root privileges: ${missing.join(', ')} missing (run it as root)`);
  }
}

/** One line on stderr, the exit code the error calls for. */
export function reportError(command: string, err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${command}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  if (process.env.XDPLB_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  if (err instanceof XdplbError) return err.exitCode;
  if (err instanceof BpfError) return EXIT_FAILURE;
  return EXIT_FAILURE;
}

export async function runCommand(command: string, body: () => Promise<number> | number): Promise<never> {
  let code: number;
  try {
    code = await body();
  } catch (err) {
    code = reportError(command, err);
  }
  process.exitCode = code;
  // Flush what went through process.stdout before leaving (a pipe may be
  // slow to drain).
  await outputFlushed();
  process.exit(code);
}
