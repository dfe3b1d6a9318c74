// Directory locks: flock(2) on a directory serializes the processes that
// change the state pinned in it (bpffs takes them like any file system).
import { closeSync, openSync } from 'node:fs';
import { c, errno } from '../libbpf/ffi.js';
import { BpfError } from '../libbpf/errors.js';

const LOCK_SH = 1;
const LOCK_EX = 2;

/** Run `fn` holding a flock(2) on a directory (bpffs takes them like any
 *  file system), exclusive or shared; it goes with the fd when `fn`
 *  returns. */
export function withDirLock<T>(dir: string, fn: () => T, shared = false): T {
  const fd = openSync(dir, 'r');
  try {
    if (c.flock(fd, shared ? LOCK_SH : LOCK_EX) < 0) throw new BpfError('flock', errno(), `cannot lock ${dir}`);
    return fn();
  } finally {
    closeSync(fd);
  }
}
