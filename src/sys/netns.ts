// Network namespaces: which one this process is in (pins are kept per
// namespace), and entering another (tests run programs and their FIB
// lookups inside namespaces of their own).
import { statSync } from 'node:fs';
import { c, errno } from '../libbpf/ffi.js';
import { BpfError } from '../libbpf/errors.js';

/** Switch this thread into the network namespace behind `nsFd` (an open
 *  /run/netns/<name> or /proc/self/ns/net). */
export function setNetns(nsFd: number): void {
  if (c.setns(nsFd, 0x40000000 /* CLONE_NEWNET */) < 0) {
    throw new BpfError('setns', errno(), `cannot enter network namespace fd ${nsFd}`);
  }
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

/** The current network namespace's cookie (SO_NETNS_COOKIE, kernel 5.14+):
 *  unlike its inode number it is never reused while the system runs, so a
 *  namespace created later can never take over another's pins. */
export function netnsCookie(): bigint {
  const sock = c.socket(AF_UNIX, SOCK_DGRAM, 0);
  if (sock < 0) throw new BpfError('socket', errno(), 'cannot open a socket to identify the network namespace');
  try {
    const value = Buffer.alloc(8);
    const len = [8];
    if (c.getsockopt(sock, SOL_SOCKET, SO_NETNS_COOKIE, value, len) < 0) {
      throw new BpfError('getsockopt(SO_NETNS_COOKIE)', errno(), 'cannot identify the network namespace (kernel 5.14 or later needed)');
    }
    return value.readBigUInt64LE(0);
  } finally {
    c.close(sock);
  }
}

/** The inode of a network namespace file (what `lsns` and `ip netns
 *  identify` show), for the current one by default. */
export function netnsInode(path = '/proc/self/ns/net'): number {
  return statSync(path).ino;
}
