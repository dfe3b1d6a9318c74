// Network namespaces: tests run BPF programs (and their FIB lookups) inside
// a namespace of their own.
import { c, errno } from './ffi.js';
import { BpfError } from './errors.js';

/** Switch this thread into the network namespace behind `nsFd` (an open
 *  /run/netns/<name> or /proc/self/ns/net). */
export function setNetns(nsFd: number): void {
  if (c.setns(nsFd, 0x40000000 /* CLONE_NEWNET */) < 0) {
    throw new BpfError('setns', errno(), `cannot enter network namespace fd ${nsFd}`);
  }
}
