// Where things live: bpffs pins and the built BPF objects.
import { existsSync, mkdirSync, readFileSync, chmodSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
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

export const PIN = {
  root: 'root', link: 'link', slots: 'slots', stats: 'stats', slot_mask: 'slot_mask',
  samples: 'samples', sampling: 'sampling', sample_stats: 'sample_stats',
} as const;

export function isBpffsMounted(at = BPFFS): boolean {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((line) => {
    const [, target, type] = line.split(' ');
    return target === at && type === 'bpf';
  });
}

/** A subprogram's maps kept for one interface: <pin root>/<ifname>/<program>/. */
export function subprogramDir(ifname: string, program: string): string {
  return join(interfaceDir(ifname), program);
}

/** A subprogram's maps shared by every interface it runs on. The directory
 *  name is longer than an interface name can be (15), so it never clashes. */
export const SHARED_DIR = 'program-shared-state';
export function sharedDir(program: string): string {
  return join(pinRoot(), SHARED_DIR, program);
}

/** Make a directory for pins under the pin root: bpffs mounted, 0700 all the
 *  way down. */
export function ensurePinDir(dir: string): void {
  if (!isBpffsMounted()) mountBpffs(BPFFS);
  const base = pinRoot();
  const rel = relative(base, dir);
  if (rel.startsWith('..')) throw new Error(`pin directory ${dir} is outside ${base}`);
  let d = base;
  for (const part of ['', ...rel.split(sep).filter(Boolean)]) {
    d = join(d, part);
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
