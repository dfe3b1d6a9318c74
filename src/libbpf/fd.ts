// File descriptors of kernel objects: closing, duplicating, pinning,
// opening pins, and reading their info.
import { c, errno } from './ffi.js';
import { BpfError, check } from './errors.js';

export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

/** A second fd for the same kernel object (it outlives the first one). */
export function dupFd(fd: number): number {
  const copy = c.dup(fd);
  if (copy < 0) throw new BpfError('dup', errno(), `cannot duplicate fd ${fd}`);
  return copy;
}

/** Run `fn` with `fd`, closing it afterwards whatever happens. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

export function pinObject(fd: number, path: string): void {
  check('bpf_obj_pin', c.bpf_obj_pin(fd, path), `cannot pin ${path}`);
}

/** Open a pinned object; null when nothing is pinned at `path`. */
export function openPinned(path: string): number | null {
  const fd = c.bpf_obj_get(path);
  if (fd >= 0) return fd;
  if (-fd === 2 /* ENOENT */) return null;
  throw new BpfError('bpf_obj_get', -fd, `cannot open pinned object ${path}`);
}

/** bpf_obj_get_info_by_fd into a buffer of `size` bytes (`prepare` fills
 *  in the pointers and counts the kernel is to write through). */
export function objInfo(fd: number, size: number, what: string, prepare?: (info: Buffer) => void): Buffer {
  const info = Buffer.alloc(size);
  prepare?.(info);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  check('bpf_obj_get_info_by_fd', c.bpf_obj_get_info_by_fd(fd, info, len), `cannot read ${what} info of fd ${fd}`);
  return info;
}
