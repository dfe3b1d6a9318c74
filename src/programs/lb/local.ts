// Whether clients can reach a VIP at all: the balancer's neighbours send a
// VIP's packets to it only if it answers ARP or ND for the address (it is an
// address of this network namespace) or a router routes the address to it.
// The first is checked here, from the kernel's own tables in /proc (the
// local routes of /proc/net/fib_trie, the addresses of /proc/net/if_inet6);
// the second cannot be seen from here, so a VIP that is not local is a
// warning, not an error.
import { readFileSync } from 'node:fs';
import { parseIfInet6 as parseInet6 } from '../../net/addresses.js';
import { addrBytes, addrText } from './layout.js';
import { vipName, type LbConfig } from './config.js';

export interface LocalAddresses {
  /** IPv4 local routes: [network, prefix length], the network as a 32-bit number. */
  v4: Array<[number, number]>;
  /** IPv6 addresses, in canonical form. */
  v6: Set<string>;
}

const v4Number = (text: string) => addrBytes(text).readUInt32BE(0);

/** The local routes ("host LOCAL", a leaf's prefix line) of /proc/net/fib_trie:
 *  every address of the namespace, and whole local ranges (ip route add local). */
export function parseFibTrie(text: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let leaf: number | null = null;
  for (const line of text.split('\n')) {
    const key = /^\s*\|-- (\d+\.\d+\.\d+\.\d+)$/.exec(line);
    if (key) {
      leaf = v4Number(key[1]);
      continue;
    }
    const prefix = /^\s*\/(\d+) \S+ LOCAL\b/.exec(line);
    if (prefix && leaf !== null) out.push([leaf, Number(prefix[1])]);
  }
  return out;
}

/** The addresses of /proc/net/if_inet6, in canonical form. */
export function parseIfInet6(text: string): Set<string> {
  return new Set(parseInet6(text).map((a) => addrText(a.bytes, 6)));
}

export function localAddresses(): LocalAddresses {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return ''; // no IPv6 in this kernel, say
    }
  };
  return { v4: parseFibTrie(read('/proc/net/fib_trie')), v6: parseIfInet6(read('/proc/net/if_inet6')) };
}

/** Whether the kernel takes packets to `address` as its own. */
export function isLocal(address: string, local: LocalAddresses = localAddresses()): boolean {
  if (address.includes(':')) return local.v6.has(address);
  const a = v4Number(address);
  return local.v4.some(([net, len]) => len === 0 || (a ^ net) >>> (32 - len) === 0);
}

/** One line per VIP address that is not an address of this namespace,
 *  naming its VIPs and what to do. */
export function vipWarnings(config: LbConfig, local: LocalAddresses = localAddresses()): string[] {
  const away = new Map<string, string[]>();
  for (const v of config.vips) {
    if (isLocal(v.address, local)) continue;
    if (!away.has(v.address)) away.set(v.address, []);
    away.get(v.address)!.push(vipName(v));
  }
  return [...away].map(([address, names]) => {
    const six = address.includes(':');
    return `${names.length > 1 ? 'VIPs' : 'VIP'} ${names.join(', ')}: ${address} is not an address of this network namespace, ` +
      `so nothing here answers ${six ? 'ND' : 'ARP'} for it: add it to an interface (ip address add ${address}/${six ? 128 : 32} dev lo) ` +
      'or have it routed to this host';
  });
}
