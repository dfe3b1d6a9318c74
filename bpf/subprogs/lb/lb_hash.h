/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The flow hash: the 5-tuple mixed word by word (multiply-xorshift), then
 * MurmurHash3's finalizer. It picks the Maglev entry and the NAT ports to
 * try; balancers running this object agree on it. The flow key hash
 * (lb_flow_key_hash) is the same over an IPv4 flow's words that are not
 * always zero: every packet of a tracked flow computes it (flow cache
 * slot, encapsulation entropy), and the six zero words cost an IPv4
 * packet about 10 ns. The VIP hash is the same mix over the words of a
 * struct lb_vip_key, an IPv4 VIP's zero words left out alike. */
#ifndef XDPLB_LB_HASH_H
#define XDPLB_LB_HASH_H

#include "lb_maps.h"

#define LB_SEED_MAGLEV 0x5bd1e995
#define LB_SEED_NAT 0x27d4eb2f
#define LB_SEED_VIP 0x165667b1
#define LB_SEED_CACHE 0x61c88647

static __always_inline __u32 lb_mix(__u32 h, __u32 w)
{
	h ^= w;
	h *= 0x9e3779b1;
	return h ^ (h >> 16);
}

static __always_inline __u32 lb_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

static __always_inline __u32 lb_flow_hash(const struct lb_flow *f, __u32 seed)
{
	__u32 h = seed;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		h = lb_mix(h, f->src.w[i]);
		h = lb_mix(h, f->dst.w[i]);
	}
	h = lb_mix(h, ((__u32)f->sport << 16) | f->dport);
	h = lb_mix(h, f->proto);
	return lb_final(h);
}

static __always_inline int lb_flow_eq(const struct lb_flow *a, const struct lb_flow *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 4); i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

/* lb_flow_hash(f, LB_SEED_CACHE), but over an IPv4 flow's two address
 * words only. */
static __always_inline __u32 lb_flow_key_hash(const struct lb_flow *f)
{
	__u32 h = LB_SEED_CACHE;

	if (f->family != LB_FAMILY_V4)
		return lb_flow_hash(f, LB_SEED_CACHE);
	h = lb_mix(h, f->src.w[0]);
	h = lb_mix(h, f->dst.w[0]);
	h = lb_mix(h, ((__u32)f->sport << 16) | f->dport);
	h = lb_mix(h, f->proto);
	return lb_final(h);
}

/* May (dst, dport, proto, family) be a VIP? -1 means certainly not (its
 * bit in lb_vip_bits is clear); otherwise the bit's index, which also
 * indexes lb_vip_index. The words mixed are those of its lb_vip_key,
 * little-endian, an IPv4 VIP's three zero words left out, as
 * src/programs/lb/vipbits.ts mixes them. */
static __always_inline int lb_vip_bit(const struct lb_addr *dst, __be16 dport, __u8 proto, __u8 family)
{
	__u32 h = LB_SEED_VIP, word;
	__u64 *bits;

	if (family == LB_FAMILY_V4) {
		h = lb_mix(h, dst->w[0]);
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			h = lb_mix(h, dst->w[i]);
	}
	h = lb_mix(h, (__u32)dport | (__u32)proto << 16 | (__u32)family << 24);
	h = lb_final(h) & (LB_VIP_BITS_WORDS * 64 - 1);
	word = h >> 6;
	bits = bpf_map_lookup_elem(&lb_vip_bits, &word);
	return bits && (*bits >> (h & 63)) & 1 ? (int)h : -1;
}

static __always_inline int lb_vip_maybe_at(const struct lb_addr *dst, __be16 dport, __u8 proto, __u8 family)
{
	return lb_vip_bit(dst, dport, proto, family) >= 0;
}

static __always_inline int lb_vip_maybe(const struct lb_flow *f)
{
	return lb_vip_maybe_at(&f->dst, f->dport, f->proto, f->family);
}

#endif
