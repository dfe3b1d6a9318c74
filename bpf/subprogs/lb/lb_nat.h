/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * NAT: rewriting addresses and ports with incremental checksums, and
 * choosing NAT source ports.
 *
 * Port allocation: a port is unique per (backend address, backend port,
 * protocol), which is all a backend needs to tell flows apart. The ports
 * tried are a sequence of hashes of the flow (LB_NAT_PROBES at most), each
 * anywhere in the range: with linear probing (the next port, then the
 * next) taken ports clump into runs, and a new flow landing in a run of
 * more than the probe count failed with a third of the range still free.
 * Independent probes fail only when every one of them is taken. A port is
 * taken by inserting its reverse entry into lb_nat with BPF_NOEXIST, so two
 * CPUs never get the same one, or by replacing an entry that
 * lb_nat_stale() shows is free. A packet of a flow in progress that the
 * table no longer places (idle past its time, or placed on a CPU that
 * lost it) finds its own entry and keeps its port, so the backend's
 * connection goes on; a SYN never does, it starts a new connection, whose
 * predecessor on the same 4-tuple the backend may still hold in TIME_WAIT. Ports equal to a VIP port on the NAT address are skipped:
 * replies to them would look like new client flows.
 */
#ifndef XDPLB_LB_NAT_H
#define XDPLB_LB_NAT_H

#include <linux/in.h>
#include "lib/csum.h"
#include "lb_maps.h"
#include "lb_hash.h"
#include "lb_conntrack.h"

#define LB_NAT_PROBES 64

/* What changes in a packet: the addresses and the two ports (consecutive in
 * TCP and UDP headers), as 32-bit words for bpf_csum_diff(). */
struct lb_tuple {
	struct lb_addr src;
	struct lb_addr dst;
	__be16 sport;
	__be16 dport;
};

/* A rewrite's two tuples and the NAT key it looks up or forgets, here
 * rather than on the stack (512 bytes for a chain of calls). */
struct lb_tuples {
	struct lb_tuple from, to;
	struct lb_nat_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_tuples);
} lb_tuple_scratch SEC(".maps");

static __always_inline struct lb_tuples *lb_tuples(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lb_tuple_scratch, &zero);
}

/* RFC 1624 over the tuple's 32-bit words, inline: the one's-complement sum
 * does not care about byte order or word size, and bpf_csum_diff() is a
 * helper call that cost tens of ns per packet here. */
static __always_inline __u16 lb_csum_apply(__u16 check, const struct lb_tuple *from, const struct lb_tuple *to)
{
	const __u32 *f = (const __u32 *)from, *t = (const __u32 *)to;
	__u64 sum = (__u16)~check;

	/* Unrolled by three: whole, its eighteen loads stay live across the
	 * header writes and spill onto a stack the program is short of; not
	 * at all, the loop cost a few ns. */
#pragma unroll 3
	for (int i = 0; i < (int)(sizeof(*from) / 4); i++)
		sum += (__u32)~f[i] + (__u64)t[i];
	return xdplb_csum_fold(sum);
}

/* New addresses in an IPv4 header (its checksum updated) or an IPv6 one. */
static __always_inline void lb_rewrite_ip(struct iphdr *ip, struct ipv6hdr *ip6, const struct lb_addr *src,
					  const struct lb_addr *dst)
{
	if (ip) {
		xdplb_csum_replace4(&ip->check, ip->saddr, src->w[0]);
		xdplb_csum_replace4(&ip->check, ip->daddr, dst->w[0]);
		ip->saddr = src->w[0];
		ip->daddr = dst->w[0];
	} else if (ip6) {
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
	}
}

/* Write `to` over the packet's `from`: L4 checksum (pseudo-header and ports),
 * then for IPv4 the header checksum. UDP over IPv4 with checksum 0 (none)
 * keeps 0; a computed 0 is sent as 0xffff (RFC 768). */
static __always_inline void lb_rewrite(struct iphdr *ip, struct ipv6hdr *ip6, struct tcphdr *th, struct udphdr *uh,
				       struct lb_tuple *from, struct lb_tuple *to)
{
	if (th) {
		th->check = lb_csum_apply(th->check, from, to);
		th->source = to->sport;
		th->dest = to->dport;
	} else if (uh) {
		if (uh->check || ip6) {
			uh->check = lb_csum_apply(uh->check, from, to);
			if (!uh->check)
				uh->check = 0xffff;
		}
		uh->source = to->sport;
		uh->dest = to->dport;
	}
	lb_rewrite_ip(ip, ip6, &to->src, &to->dst);
}

/* A new flow's NAT entry and the keys its port search uses are put
 * together here, not on the stack, which the rest of the program needs. */
struct lb_nat_work {
	struct lb_nat val;
	struct lb_nat_key key;
	struct lb_vip_key vip; /* is a candidate port a VIP's? */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_nat_work);
} lb_nat_scratch SEC(".maps");

static __always_inline int lb_port_is_vip(const struct lb_addr *nat, __be16 port, __u8 proto, __u8 family,
					  struct lb_vip_key *k)
{
	if (!lb_vip_maybe_at(nat, port, proto, family))
		return 0;
	k->addr = *nat;
	k->port = port;
	k->proto = proto;
	k->family = family;
	return bpf_map_lookup_elem(&lb_vips, k) != NULL;
}

/* Take a NAT port for a new flow to `be`; 0 when none is free. `syn`: the
 * packet starts a connection. */
static __always_inline __be16 lb_nat_alloc(const struct lb_flow *flow, const struct lb_backend *be,
					   __u32 backend, __u32 vip, const struct lb_addr *nat,
					   const struct lb_config *cfg, __u64 now, int syn)
{
	__u32 range = (__u32)cfg->port_max - cfg->port_min + 1;
	struct lb_nat_work *w;
	struct lb_nat_key *key;
	struct lb_nat *val;
	__u32 start, zero = 0;

	w = bpf_map_lookup_elem(&lb_nat_scratch, &zero);
	if (!w || cfg->port_max < cfg->port_min || cfg->port_min == 0)
		return 0;
	__builtin_memset(w, 0, sizeof(*w));
	val = &w->val;
	key = &w->key;
	key->backend = be->addr;
	key->bport = be->port;
	key->proto = flow->proto;
	key->family = flow->family;
	val->flow = *flow;
	val->backend = backend;
	val->vip = vip;
	val->cpu = bpf_get_smp_processor_id();
	start = lb_flow_hash(flow, LB_SEED_NAT);
	for (__u32 i = 0; i < LB_NAT_PROBES; i++) {
		struct lb_nat *old;

		key->nport = bpf_htons(cfg->port_min + (i ? lb_final(start + i * 0x9e3779b9) : start) % range);
		if (lb_port_is_vip(nat, key->nport, flow->proto, flow->family, &w->vip))
			continue;
		if (!bpf_map_update_elem(&lb_nat, key, val, BPF_NOEXIST))
			return key->nport;
		old = bpf_map_lookup_elem(&lb_nat, key);
		if (!old)
			continue;
		if (!syn && old->backend == backend && lb_flow_eq(&old->flow, flow)) {
			old->cpu = val->cpu;
			return key->nport;
		}
		if (lb_nat_stale(old, key, cfg, now) && !bpf_map_update_elem(&lb_nat, key, val, BPF_EXIST))
			return key->nport;
	}
	return 0;
}

#endif
