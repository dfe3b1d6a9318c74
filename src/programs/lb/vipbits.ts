// The data plane's first question about a packet: may its destination be a
// VIP? One bit per hash of the VIP key, in lb_vip_bits; lb_vip_maybe() in
// bpf/subprogs/lb/lb_hash.h mixes the same little-endian words of a struct
// lb_vip_key (an IPv4 VIP's zero address words left out) with the same
// constants, so both sides agree on the bit.
import { LAYOUT } from './layout.js';

export const VIP_BITS_WORDS = 1024;
const BITS = VIP_BITS_WORDS * 64;
const SEED_VIP = 0x165667b1;

const mix = (h: number, w: number) => {
  h = Math.imul(h ^ w, 0x9e3779b1);
  return (h ^ (h >>> 16)) >>> 0;
};

const final = (h: number) => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
};

/** The bit of an encoded VIP key (encodeVipKey): an IPv4 VIP's three zero
 *  address words are not mixed. */
export function vipBit(key: Buffer): number {
  let h = SEED_VIP;
  const v4 = key[LAYOUT.lb_vip_key.family] === 4;
  for (let i = 0; i < LAYOUT.lb_vip_key.size; i += 4) {
    if (!(v4 && i > 0 && i < 16)) h = mix(h, key.readUInt32LE(i));
  }
  return final(h) & (BITS - 1);
}

/** The whole bit array for these VIP keys, as lb_vip_bits holds it (u64
 *  words, little-endian: bit n is bit n % 8 of byte n / 8). */
export function vipBits(keys: Iterable<Buffer>): Buffer {
  const out = Buffer.alloc(VIP_BITS_WORDS * 8);
  for (const key of keys) {
    const bit = vipBit(key);
    out[bit >> 3] |= 1 << (bit & 7);
  }
  return out;
}

/** lb_vip_index for these stateless VIPs (encoded key, id): at each one's
 *  bit, its id + 1; 0 where none is, or where two share a bit (their
 *  packets then find them in lb_vips, as every other VIP's do). */
export function vipIndex(vips: Iterable<{ key: Buffer; id: number }>): Buffer {
  const out = Buffer.alloc(VIP_BITS_WORDS * 64 * 4);
  const shared = new Set<number>();
  for (const { key, id } of vips) {
    const bit = vipBit(key);
    if (out.readUInt32LE(bit * 4) || shared.has(bit)) {
      shared.add(bit);
      out.writeUInt32LE(0, bit * 4);
    } else {
      out.writeUInt32LE(id + 1, bit * 4);
    }
  }
  return out;
}
