// A booted Debian 13 with systemd, made for one test run: debootstrap into a
// scratch directory, the package installed with apt (its dependencies from
// Debian), booted with systemd-nspawn inside a network namespace of ours.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';

const MIRROR = 'http://deb.debian.org/debian';

function sh(cmd: string, args: string[], opts: { input?: string; timeout?: number } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeout ?? 600_000, stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface Container {
  rootfs: string;
  machine: string;
  nspawn: ChildProcess;
  pid1: number;
  /** Run a command inside (all namespaces of its PID 1). */
  exec(args: string[], opts?: { input?: string }): { code: number; out: string };
  stop(): Promise<void>;
}

export function debootstrap(rootfs: string, include: string[]): void {
  sh('debootstrap', ['--variant=minbase', `--include=${include.join(',')}`, 'trixie', rootfs, MIRROR], { timeout: 900_000 });
}

export function installDeb(rootfs: string, deb: string): void {
  copyFileSync('/etc/resolv.conf', join(rootfs, 'etc/resolv.conf'));
  copyFileSync(deb, join(rootfs, 'root', basename(deb)));
  sh('chroot', [rootfs, 'sh', '-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /root/${basename(deb)}`], { timeout: 900_000 });
}

function childPid(parent: number): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** Boot the tree. `bpffs` is a directory on the host's bpffs that the
 *  container sees as its /sys/fs/bpf: its pins stay apart from everything
 *  else on this machine, and the host can still read them. */
export async function boot(rootfs: string, machine: string, netns: string, bpffs: string): Promise<Container> {
  const nspawn = spawn('systemd-nspawn', [
    '--boot', '--register=no', '--keep-unit', '--capability=all', '--system-call-filter=bpf perf_event_open',
    `--bind=${bpffs}:/sys/fs/bpf`, `--network-namespace-path=/run/netns/${netns}`, '-M', machine, '--console=pipe', '-D', rootfs,
  ], { stdio: ['ignore', 'ignore', 'ignore'] });
  const deadline = Date.now() + 60_000;
  let pid1: number | null = null;
  const exec = (args: string[], opts: { input?: string } = {}) => {
    try {
      return { code: 0, out: sh('nsenter', ['-t', String(pid1), '-a', ...args], opts) };
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string };
      return { code: e.status ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  };
  for (;;) {
    if (Date.now() > deadline) throw new Error(`container ${machine} did not boot`);
    if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited with ${nspawn.exitCode}`);
    pid1 ??= childPid(nspawn.pid!);
    if (pid1) {
      const state = exec(['systemctl', 'is-system-running']).out.trim();
      if (state === 'running' || state === 'degraded') break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    rootfs, machine, nspawn, pid1: pid1!, exec,
    async stop() {
      if (nspawn.exitCode === null) {
        exec(['systemctl', 'poweroff', '--no-block']);
        const done = new Promise((r) => nspawn.once('exit', r));
        const timer = setTimeout(() => nspawn.kill('SIGKILL'), 20_000);
        await done;
        clearTimeout(timer);
      }
    },
  };
}

export function removeRootfs(rootfs: string): void {
  if (existsSync(rootfs)) rmSync(rootfs, { recursive: true, force: true });
}
