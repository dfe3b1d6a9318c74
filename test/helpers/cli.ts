// Run the built commands as an operator would: a separate process, optionally
// inside a network namespace (nsenter keeps the bpffs mount; ip netns exec
// would remount /sys).
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export const ROOT_DIR = resolve(import.meta.dirname, '../..');
export const BIN = (name: string) => resolve(ROOT_DIR, 'bin', name);
export const BPF = (name: string) => resolve(ROOT_DIR, 'build/bpf', name);

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { netns?: string; env?: NodeJS.ProcessEnv; prefix?: string[] } = {}): Run {
  const argv = [...(opts.prefix ?? []), cmd, ...args];
  const full = opts.netns ? ['nsenter', `--net=/run/netns/${opts.netns}`, ...argv] : argv;
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8', env: { ...process.env, ...opts.env }, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function xdpRoot(args: string[], opts: Parameters<typeof run>[2] = {}): Run {
  return run(BIN('xdp-root'), args, opts);
}

/** Run and insist on success; returns stdout. */
export function ok(r: Run): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export function sh(cmd: string, args: string[], netns?: string): string {
  return ok(run(cmd, args, { netns }));
}
