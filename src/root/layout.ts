// Where things live: bpffs pins and the built BPF objects.
import { existsSync, mkdirSync, readFileSync, chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountBpffs } from '../libbpf/index.js';

export const SLOTS = 8;
export const BPFFS = '/sys/fs/bpf';

/** The root of our pins: /sys/fs/bpf/xdplb, or $XDPLB_PIN_ROOT. */
export function pinRoot(): string {
  return process.env.XDPLB_PIN_ROOT || join(BPFFS, 'xdplb');
}

/** Per-interface pins. */
export function interfaceDir(ifname: string): string {
  return join(pinRoot(), ifname);
}

export const PIN = { root: 'root', link: 'link', slots: 'slots', stats: 'stats' } as const;

export function isBpffsMounted(at = BPFFS): boolean {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((line) => {
    const [, target, type] = line.split(' ');
    return target === at && type === 'bpf';
  });
}

/** Make a directory for pins: bpffs mounted, 0700 all the way down. */
export function ensurePinDir(dir: string): void {
  if (!isBpffsMounted()) mountBpffs(BPFFS);
  const base = pinRoot();
  for (const d of [base, dir]) {
    if (!existsSync(d)) {
      mkdirSync(d, { mode: 0o700 });
      chmodSync(d, 0o700);
    }
  }
}

const here = dirname(fileURLToPath(import.meta.url));

/** Directory of the built BPF objects: $XDPLB_BPF_DIR, the checkout's
 *  build/bpf, or the package's /usr/lib/xdplb/bpf (both next to the bundle). */
export function bpfObjectDir(): string {
  if (process.env.XDPLB_BPF_DIR) return process.env.XDPLB_BPF_DIR;
  const candidates = [resolve(here, '../build/bpf'), resolve(here, '../../build/bpf'), resolve(here, '../bpf')];
  return candidates.find((d) => existsSync(join(d, 'xdp_root.o'))) ?? candidates[0];
}

export function bpfObject(name: string): string {
  return join(bpfObjectDir(), name);
}
