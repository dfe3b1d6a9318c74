// Source prefixes for the drop lists: parsing, validation and the LPM trie
// keys. An IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/96..128) is the IPv4
// prefix it maps, stored and shown in the IPv4 list, because the filter looks
// an IPv4-mapped source up there.
import { isIPv4, isIPv6 } from 'node:net';
import { UsageError } from '../../errors.js';
import { KEY4_LAYOUT, KEY6_LAYOUT } from './layout.js';

export interface Prefix {
  family: 4 | 6;
  /** Network address bytes (4 or 16), host bits zero. */
  addr: Buffer;
  len: number;
}

function bad(text: string, why: string): UsageError {
  return new UsageError(`invalid prefix '${text}': ${why}`);
}

const EXPECTED = 'expected an IPv4 or IPv6 address with an optional /length, like 192.0.2.0/24 or 2001:db8::/32';

function v4Bytes(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

function v6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  let tail: Buffer = Buffer.alloc(0);
  if (text.includes('.')) {
    // A trailing dotted quad fills the last two groups.
    const colon = text.lastIndexOf(':');
    tail = v4Bytes(text.slice(colon + 1));
    text = text.slice(0, colon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const split = (s: string) => (s ? s.split(':') : []);
  const [head, rest] = text.split('::');
  const groups = rest === undefined
    ? split(head)
    : [...split(head), ...Array(8 - tail.length / 2 - split(head).length - split(rest).length).fill('0'), ...split(rest)];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  tail.copy(out, 16 - tail.length);
  return out;
}

/** `2001:db8::`, `::ffff:10.0.0.0`: the canonical text of an address. */
export function formatAddress(family: 4 | 6, addr: Buffer): string {
  if (family === 4) return [...addr].join('.');
  const groups = Array.from({ length: 8 }, (_, i) => addr.readUInt16BE(i * 2));
  // The longest run of zero groups (at least two) becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.addr)}/${p.len}`;
}

const MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** `192.0.2.0/24`, `2001:db8::/32`, a bare address (a host prefix). */
export function parsePrefix(text: string): Prefix {
  const m = /^([^/]*)(?:\/(.*))?$/.exec(text)!;
  const [, address, lenText] = m;
  const family = isIPv4(address) ? 4 : isIPv6(address) && !address.includes('%') ? 6 : 0;
  if (!family) throw bad(text, EXPECTED);
  const bits = family === 4 ? 32 : 128;
  if (lenText !== undefined && (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits)) {
    throw bad(text, `the length must be a whole number from 0 to ${bits}`);
  }
  const len = lenText === undefined ? bits : Number(lenText);
  const addr = family === 4 ? v4Bytes(address) : v6Bytes(address);
  const net = Buffer.from(addr);
  for (let bit = len; bit < bits; bit++) net[bit >> 3] &= ~(0x80 >> (bit & 7));
  if (!net.equals(addr)) {
    throw bad(text, `host bits are set: expected ${formatPrefix({ family, addr: net, len })}`);
  }
  if (family === 6 && len >= 96 && net.subarray(0, 12).equals(MAPPED)) {
    return { family: 4, addr: Buffer.from(net.subarray(12)), len: len - 96 };
  }
  return { family, addr: net, len };
}

/** The LPM trie key: prefix length (host order), then the address. */
export function prefixKey(p: Prefix): Buffer {
  const layout = p.family === 4 ? KEY4_LAYOUT : KEY6_LAYOUT;
  const key = Buffer.alloc(layout.size);
  key.writeUInt32LE(p.len, layout.prefixlen);
  p.addr.copy(key, layout.addr);
  return key;
}

export function keyPrefix(family: 4 | 6, key: Buffer): Prefix {
  const layout = family === 4 ? KEY4_LAYOUT : KEY6_LAYOUT;
  return { family, len: key.readUInt32LE(layout.prefixlen), addr: Buffer.from(key.subarray(layout.addr, layout.size)) };
}
