// Which interfaces the service attaches to, decided from the kernel's own
// tables (no tools run), and the sanity checks made before attaching.
//
// /proc/net follows the reader's network namespace; /sys/class/net shows the
// namespace sysfs was mounted in, which in a container or under nsenter may
// be another one. So the live view reads routes and bonds from /proc/net and
// flags and MTU with ioctl; a view of a copied /sys and /proc tree (tests)
// reads the same facts from files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { linkState, type LinkState } from '../sys/netdev.js';
import type { Mode } from '../root/attach.js';

export interface SystemView {
  /** /proc/net: route, ipv6_route, bonding/<bond>. */
  procNet: string;
  /** /proc/sys/kernel/osrelease. */
  osrelease: string;
  /** Flags and MTU of an interface, null when it does not exist. */
  link(name: string): LinkState | null;
}

export const HOST: SystemView = {
  procNet: '/proc/net',
  osrelease: '/proc/sys/kernel/osrelease',
  link: linkState,
};

/** A view of copied trees: <root>/proc/net, <root>/sys/class/net, <root>/osrelease. */
export function treeView(root: string): SystemView {
  const sys = join(root, 'sys/class/net');
  return {
    procNet: join(root, 'proc/net'),
    osrelease: join(root, 'osrelease'),
    link(name) {
      const flags = read(join(sys, name, 'flags'));
      if (flags === null) return null;
      return { flags: Number(flags.trim()), mtu: Number(read(join(sys, name, 'mtu'))?.trim() ?? '0') };
    },
  };
}

const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;
const RTF_UP = 0x1;
const RTF_REJECT = 0x200;
/** Largest MTU native XDP takes without multi-buffer support on most drivers:
 *  4096 page - 256 headroom - 320 skb_shared_info - 14 Ethernet - 8 VLANs. */
export const NATIVE_XDP_MAX_MTU = 3498;
/** Native XDP on bonds arrived in Linux 5.15. */
const BOND_XDP_KERNEL: [number, number] = [5, 15];

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** A bond's members, from /proc/net/bonding/<bond>; null when not a bond. */
function bondSlaves(view: SystemView, ifname: string): string[] | null {
  const text = read(join(view.procNet, 'bonding', ifname));
  if (text === null) return null;
  return [...text.matchAll(/^Slave Interface:\s*(\S+)/gm)].map((m) => m[1]);
}

/** Interfaces of the IPv4 and IPv6 default routes, in that order. */
export function defaultRouteInterfaces(view: SystemView): string[] {
  const names: string[] = [];
  for (const line of (read(join(view.procNet, 'route')) ?? '').split('\n').slice(1)) {
    const [iface, dest, , fl, , , , mask] = line.trim().split(/\s+/);
    if (iface && dest === '00000000' && mask === '00000000' && parseInt(fl, 16) & RTF_UP) names.push(iface);
  }
  for (const line of (read(join(view.procNet, 'ipv6_route')) ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, plen, fl, iface] = [f[0], f[1], parseInt(f[8], 16), f[9]];
    if (/^0{32}$/.test(dest) && plen === '00' && !(fl & RTF_REJECT) && fl & RTF_UP) names.push(iface);
  }
  return [...new Set(names)];
}

function kernelAtLeast(view: SystemView, [major, minor]: [number, number]): boolean {
  const m = /^(\d+)\.(\d+)/.exec(read(view.osrelease) ?? '');
  return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

export interface Choice {
  interfaces: string[];
  /** Why each was chosen or left out, for --dry-run. */
  reasons: string[];
}

/** Resolve `auto` (or check a given list) into the interfaces to attach to. */
export function chooseInterfaces(wanted: string[] | 'auto', view: SystemView = HOST): Choice {
  const reasons: string[] = [];
  if (wanted !== 'auto') {
    reasons.push(`interfaces listed in the config: ${wanted.join(', ')}`);
    return { interfaces: wanted, reasons };
  }
  const chosen: string[] = [];
  for (const name of defaultRouteInterfaces(view)) {
    if ((view.link(name)?.flags ?? 0) & IFF_LOOPBACK) {
      reasons.push(`${name}: carries a default route but is loopback: left out`);
      continue;
    }
    const members = bondSlaves(view, name);
    if (members) {
      if (kernelAtLeast(view, BOND_XDP_KERNEL)) {
        reasons.push(`${name}: carries a default route; a bond, and this kernel runs XDP on bonds: the bond itself`);
        chosen.push(name);
      } else {
        reasons.push(`${name}: carries a default route; a bond on a kernel without XDP on bonds: its members ${members.join(', ')}`);
        chosen.push(...members);
      }
      continue;
    }
    reasons.push(`${name}: carries a default route`);
    chosen.push(name);
  }
  return { interfaces: [...new Set(chosen)], reasons };
}

/** What stands in the way of attaching in this mode; empty when nothing. */
export function interfaceProblems(name: string, mode: Mode, view: SystemView = HOST): string[] {
  const link = view.link(name);
  if (!link) return [`${name}: no such interface`];
  const problems: string[] = [];
  if (link.flags & IFF_LOOPBACK) problems.push(`${name}: is loopback`);
  if (!(link.flags & IFF_UP)) problems.push(`${name}: is down`);
  if (mode === 'native' && link.mtu > NATIVE_XDP_MAX_MTU) {
    problems.push(`${name}: MTU ${link.mtu} is above ${NATIVE_XDP_MAX_MTU}, the most native XDP takes; lower it or use mode skb`);
  }
  return problems;
}
