// Running a long-lived command the way systemd would: its own notify socket
// (a unix datagram socket this test owns) and, inside a network namespace,
// a /sys that shows that namespace while bpffs stays the host's.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Lines received on a fake NOTIFY_SOCKET. */
export class NotifySocket {
  readonly dir = mkdtempSync(join(tmpdir(), 'xdplb-notify-'));
  readonly path = join(this.dir, 'notify');
  readonly lines: string[] = [];
  private proc: ChildProcess;
  private ready: Promise<void>;

  constructor() {
    this.proc = spawn('python3', [resolve(import.meta.dirname, 'notify-listener.py'), this.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const rl = createInterface({ input: this.proc.stdout! });
    this.ready = new Promise((res) => rl.on('line', (l) => (l === 'LISTENING' ? res() : this.lines.push(l))));
  }

  start(): Promise<void> {
    return this.ready;
  }

  /** Wait until a line matching `re` arrives after index `from`. */
  async waitFor(re: RegExp, from = 0, timeoutMs = 15_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find((l) => re.test(l));
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`no notify line matching ${re}; got ${JSON.stringify(this.lines)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.proc.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Command prefix: enter the namespace, give it its own sysfs, keep the
 *  host's bpffs at /sys/fs/bpf. Every step execs, so the last program keeps
 *  the spawned pid (signals reach it directly). */
export function netnsWithSys(netns: string): string[] {
  const script = [
    'set -e',
    'keep=$(mktemp -d)',
    'mount --bind /sys/fs/bpf "$keep"',
    'mount -t sysfs sysfs /sys',
    'mount --move "$keep" /sys/fs/bpf',
    'rmdir "$keep"',
    'exec "$@"',
  ].join('; ');
  return ['nsenter', `--net=/run/netns/${netns}`, 'unshare', '--mount', 'sh', '-c', script, 'sh'];
}

export interface Daemon {
  proc: ChildProcess;
  stderr: string[];
  exited: Promise<number | null>;
}

export function startDaemon(argv: string[], env: NodeJS.ProcessEnv): Daemon {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, ...env } });
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return { proc, stderr, exited };
}
