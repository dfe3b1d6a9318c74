// Addresses and directly connected subnets of this network namespace, from
// the kernel's own tables: /proc/net follows the reader's namespace, and an
// interface's primary IPv4 address comes from ioctl (sysfs and tools are not
// asked). Addresses are raw bytes here (network order, IPv4 in 4 bytes,
// IPv6 in 16); the programs that use them write them as text.
import { readFileSync } from 'node:fs';
import { ipv4Address } from '../sys/netdev.js';

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // no IPv6 in this kernel, say
  }
}

/** IFA_F_* flags of /proc/net/if_inet6 that make an address unfit to be
 *  an interface's own: DAD not done or failed, deprecated, temporary. */
const IFA_F_TEMPORARY = 0x01;
const IFA_F_DADFAILED = 0x08;
const IFA_F_DEPRECATED = 0x20;
const IFA_F_TENTATIVE = 0x40;
const UNFIT = IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE;
/** Scope 0 is global (RT_SCOPE_UNIVERSE); link-local is 0x20, host 0x10. */
const SCOPE_GLOBAL = 0;

export interface Inet6Address {
  bytes: Buffer;
  ifindex: number;
  prefixLen: number;
  scope: number;
  flags: number;
  device: string;
}

/** Each line of /proc/net/if_inet6: address, index, prefix length, scope,
 *  flags (all hex), device. */
export function parseIfInet6(text: string): Inet6Address[] {
  const out: Inet6Address[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{32})\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\S+)/.exec(line);
    if (!m) continue;
    out.push({
      bytes: Buffer.from(m[1], 'hex'), ifindex: parseInt(m[2], 16), prefixLen: parseInt(m[3], 16),
      scope: parseInt(m[4], 16), flags: parseInt(m[5], 16), device: m[6],
    });
  }
  return out;
}

export function inet6Addresses(): Inet6Address[] {
  return parseIfInet6(read('/proc/net/if_inet6'));
}

/** An interface's own addresses: its primary IPv4 address (the first of
 *  its subnet, as the kernel keeps them) and its first global IPv6 address
 *  that has passed duplicate address detection and is neither deprecated
 *  nor temporary; absent where it has none. */
export function interfaceAddresses(device: string, v6: Inet6Address[] = inet6Addresses()): { ipv4?: Buffer; ipv6?: Buffer } {
  const ipv4 = ipv4Address(device) ?? undefined;
  const ipv6 = v6.find((a) => a.device === device && a.scope === SCOPE_GLOBAL && !(a.flags & UNFIT))?.bytes;
  return { ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) };
}

export interface Prefix {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Buffer;
  length: number;
  device: string;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;
const RTF_REJECT = 0x200;
const RTF_LOCAL = 0x80000000;

/** Routes of /proc/net/route without a gateway: the subnets reached on
 *  the link (their hex words are in host order, little-endian here). */
export function parseRouteConnected(text: string): Prefix[] {
  const out: Prefix[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [device, dest, gateway, fl, , , , mask] = line.trim().split(/\s+/);
    if (!mask) continue;
    const flags = parseInt(fl, 16);
    if (!(flags & RTF_UP) || flags & (RTF_GATEWAY | RTF_REJECT) || !/^0+$/.test(gateway)) continue;
    const m = Buffer.from(mask, 'hex').reverse().readUInt32BE(0);
    out.push({ family: 4, bytes: Buffer.from(dest, 'hex').reverse(), length: Math.clz32(~m), device });
  }
  return out;
}

/** Routes of /proc/net/ipv6_route without a next hop, other than the
 *  local table's (this host's own addresses) and multicast. */
export function parseIpv6RouteConnected(text: string): Prefix[] {
  const out: Prefix[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, plen, nexthop, flags, device] = [f[0], parseInt(f[1], 16), f[4], parseInt(f[8], 16), f[9]];
    if (!(flags & RTF_UP) || flags & (RTF_GATEWAY | RTF_REJECT | RTF_LOCAL) || !/^0+$/.test(nexthop)) continue;
    if (device === 'lo' || dest.startsWith('ff')) continue;
    out.push({ family: 6, bytes: Buffer.from(dest, 'hex'), length: plen, device });
  }
  return out;
}

/** The subnets of this namespace reached without a router. */
export function connectedPrefixes(): Prefix[] {
  return [...parseRouteConnected(read('/proc/net/route')), ...parseIpv6RouteConnected(read('/proc/net/ipv6_route'))];
}

/** Whether `bytes` (4 or 16) lies in `p`. */
export function inPrefix(bytes: Buffer, p: Prefix): boolean {
  if (bytes.length !== p.bytes.length) return false;
  let left = p.length;
  for (let i = 0; i < bytes.length && left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((bytes[i] & mask) !== (p.bytes[i] & mask)) return false;
  }
  return true;
}
