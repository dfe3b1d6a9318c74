/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * IP fragments of balanced flows. The first fragment has the ports: it is
 * balanced and rewritten like any packet of its flow (its TCP or UDP
 * checksum covers the whole datagram, and the incremental update of the
 * addresses and ports it holds is exact). Where it went is noted in
 * lb_frags for LB_FRAG_LIFE_S; the later fragments, found by addresses, IP
 * id and protocol, get the same addresses and go the same way. A later
 * fragment that comes before its first one, or after that, is passed on
 * unchanged (to the kernel, which reassembles what is its own). Fragments
 * of a DSR flow keep their addresses and follow the first to its backend.
 */
#ifndef XDPLB_LB_FRAG_H
#define XDPLB_LB_FRAG_H

#include "lb_maps.h"
#include "lb_conntrack.h"

#define LB_FRAG_LIFE_S 1

/* Key and value are put together here, not on the stack, which the rest of
 * the program needs. */
struct lb_frag_pair {
	struct lb_frag_key key;
	struct lb_frag val;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_frag_pair);
} lb_frag_scratch SEC(".maps");

/* The key of a fragment of the datagram `f` (its addresses as sent). */
static __always_inline struct lb_frag_pair *lb_frag_key_of(const struct lb_flow *f, __be32 id)
{
	struct lb_frag_pair *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&lb_frag_scratch, &zero);
	if (!s)
		return NULL;
	__builtin_memset(s, 0, sizeof(*s));
	s->key.src = f->src;
	s->key.dst = f->dst;
	s->key.id = id;
	s->key.proto = f->proto;
	s->key.family = f->family;
	return s;
}

/* A first fragment of `f` now goes from `src` to `dst` (`hash`: the
 * flow's, for an encapsulation of the later ones like the first's). */
static __always_inline void lb_frag_note(const struct lb_flow *f, __be32 id, const struct lb_addr *src,
					 const struct lb_addr *dst, __u32 backend, __u32 vip, __u8 reply, __u32 hash,
					 const struct lb_config *cfg, __u64 now)
{
	struct lb_frag_pair *s = lb_frag_key_of(f, id);

	if (!s)
		return;
	s->val.src = *src;
	s->val.dst = *dst;
	s->val.expires = now + lb_ticks(cfg, LB_FRAG_LIFE_S);
	s->val.backend = backend;
	s->val.vip = vip;
	s->val.reply = reply;
	s->val.hash = hash;
	bpf_map_update_elem(&lb_frags, &s->key, &s->val, BPF_ANY);
}

#endif
