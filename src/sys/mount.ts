// The BPF file system: where pins live, mounted if missing.
import { readFileSync } from 'node:fs';
import { c, errno } from '../libbpf/ffi.js';
import { BpfError } from '../libbpf/errors.js';

export function mountBpffs(target: string): void {
  if (c.mount('bpf', target, 'bpf', 0, 'mode=0700') < 0) {
    throw new BpfError('mount', errno(), `cannot mount bpffs on ${target}`);
  }
}

export function isBpffsMounted(at: string): boolean {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((line) => {
    const [, target, type] = line.split(' ');
    return target === at && type === 'bpf';
  });
}
