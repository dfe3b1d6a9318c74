// Network devices as this namespace's kernel sees them: names, indexes,
// flags and MTU (sysfs shows the namespace it was mounted in, so ask the
// kernel).
import { c, errno, alloc, free, address, view } from '../libbpf/ffi.js';
import { BpfError } from '../libbpf/errors.js';

/** The interface's index in this network namespace, 0 when there is none. */
export function ifNameToIndex(name: string): number {
  return c.if_nametoindex(name);
}

export function ifIndexToName(ifindex: number): string | null {
  const buf = Buffer.alloc(16);
  return c.if_indextoname(ifindex, buf) ? buf.toString('utf8', 0, buf.indexOf(0)) : null;
}

export interface LinkState {
  flags: number;
  mtu: number;
}

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCGIFFLAGS = 0x8913;
const SIOCGIFMTU = 0x8921;

/** Flags and MTU of an interface in this network namespace (SIOCGIFFLAGS,
 *  SIOCGIFMTU); null when there is no such interface. */
export function linkState(name: string): LinkState | null {
  const sock = c.socket(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0) throw new BpfError('socket', errno(), 'cannot open a socket to query interfaces');
  try {
    const ifreq = Buffer.alloc(40); // struct ifreq: name[16], then the union
    ifreq.write(name, 0, 15, 'utf8');
    if (c.ioctl(sock, SIOCGIFFLAGS, 'void *', ifreq) < 0) {
      if (errno() === 19 /* ENODEV */) return null;
      throw new BpfError('ioctl(SIOCGIFFLAGS)', errno(), `cannot read the flags of ${name}`);
    }
    const flags = ifreq.readUInt16LE(16);
    if (c.ioctl(sock, SIOCGIFMTU, 'void *', ifreq) < 0) {
      throw new BpfError('ioctl(SIOCGIFMTU)', errno(), `cannot read the MTU of ${name}`);
    }
    return { flags, mtu: ifreq.readInt32LE(16) };
  } finally {
    c.close(sock);
  }
}

const SIOCGIFADDR = 0x8915;

/** The interface's primary IPv4 address (SIOCGIFADDR: the first of its
 *  list, as the kernel keeps them), 4 bytes in network order; null when it
 *  has none or there is no such interface. */
export function ipv4Address(name: string): Buffer | null {
  const sock = c.socket(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0) throw new BpfError('socket', errno(), 'cannot open a socket to query interfaces');
  try {
    const ifreq = Buffer.alloc(40);
    ifreq.write(name, 0, 15, 'utf8');
    // struct sockaddr_in in the union: family, port, then the address.
    return c.ioctl(sock, SIOCGIFADDR, 'void *', ifreq) < 0 ? null : Buffer.from(ifreq.subarray(20, 24));
  } finally {
    c.close(sock);
  }
}

const SIOCETHTOOL = 0x8946;
const ETHTOOL_GDRVINFO = 0x03;
const ETHTOOL_GSTRINGS = 0x1b;
const ETHTOOL_GSTATS = 0x1d;
const ETHTOOL_GGRO = 0x2b;
const ETH_SS_STATS = 1;
const ETH_GSTRING_LEN = 32;

/** One SIOCETHTOOL call on `name` with `cmd` (a struct ethtool_* of `size`
 *  bytes, `fill` writing its fields past cmd); null where the device or
 *  driver does not answer. */
function ethtool(name: string, size: number, fill?: (b: Buffer) => void): Buffer | null {
  const sock = c.socket(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0) return null;
  const mem = alloc(size);
  try {
    const req = Buffer.alloc(size);
    fill?.(req);
    view(mem, size).set(req);
    const ifreq = Buffer.alloc(40);
    ifreq.write(name, 0, 15, 'utf8');
    ifreq.writeBigUInt64LE(address(mem), 16);
    if (c.ioctl(sock, SIOCETHTOOL, 'void *', ifreq) < 0) return null;
    return Buffer.from(view(mem, size));
  } finally {
    free(mem);
    c.close(sock);
  }
}

/** A veth's peer_ifindex statistic, null for another device. */
function vethPeerIndex(name: string): number | null {
  const info = ethtool(name, 196, (b) => b.writeUInt32LE(ETHTOOL_GDRVINFO, 0));
  if (!info || info.toString('utf8', 4, info.indexOf(0, 4)) !== 'veth') return null;
  const n = info.readUInt32LE(180);
  const strings = ethtool(name, 12 + n * ETH_GSTRING_LEN, (b) => {
    b.writeUInt32LE(ETHTOOL_GSTRINGS, 0);
    b.writeUInt32LE(ETH_SS_STATS, 4);
    b.writeUInt32LE(n, 8);
  });
  const stats = ethtool(name, 8 + n * 8, (b) => {
    b.writeUInt32LE(ETHTOOL_GSTATS, 0);
    b.writeUInt32LE(n, 4);
  });
  if (!strings || !stats) return null;
  for (let i = 0; i < n; i++) {
    const at = 12 + i * ETH_GSTRING_LEN;
    if (strings.toString('utf8', at, strings.indexOf(0, at)) === 'peer_ifindex') return Number(stats.readBigUInt64LE(8 + i * 8));
  }
  return null;
}

/** The peer of a veth when it is in this namespace (its name, index, and
 *  whether GRO is on); null for another device or a peer elsewhere. */
export function vethPeer(name: string): { name: string; ifindex: number; gro: boolean } | null {
  const ifindex = vethPeerIndex(name);
  if (ifindex === null) return null;
  // The index is the peer's in its own namespace: the device of that index
  // here is the peer only if it is a veth whose peer is us (a veth is never
  // its own peer, so our own index means "elsewhere").
  const self = ifNameToIndex(name);
  const peer = ifIndexToName(ifindex);
  if (!peer || ifindex === self || vethPeerIndex(peer) !== self) return null;
  const gro = ethtool(peer, 8, (b) => b.writeUInt32LE(ETHTOOL_GGRO, 0));
  return { name: peer, ifindex, gro: !!gro && gro.readUInt32LE(4) !== 0 };
}
