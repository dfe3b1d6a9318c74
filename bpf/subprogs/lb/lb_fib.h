/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Layer 2 for a rewritten packet: the next hop's MAC and the egress
 * interface from the kernel's FIB and neighbour tables. XDP_TX when it leaves
 * where it came in, a redirect otherwise. When the neighbour is not resolved
 * yet the packet, already rewritten, goes up to the kernel (XDP_PASS), which
 * forwards it and resolves the neighbour on the way, so the first packet of a
 * flow is not lost; that needs forwarding on (as the FIB lookup itself does)
 * and, because the NAT source is the balancer's own address, accept_local.
 *
 * The answer is kept for LB_L2_CACHE_S (a FIB and neighbour lookup was
 * half of an established flow's cost): toward a backend per CPU, toward a
 * client in the flow's NAT entry. A changed route or neighbour MAC takes
 * effect within that time; an unresolved neighbour is never kept.
 */
#ifndef XDPLB_LB_FIB_H
#define XDPLB_LB_FIB_H

#include <linux/if_ether.h>
#include "lb_maps.h"
#include "lb_conntrack.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define LB_L2_CACHE_S 1

static __always_inline int lb_l2_out(struct xdp_md *ctx, struct ethhdr *eth, const __u8 *smac, const __u8 *dmac,
				     __u32 ifindex)
{
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

static __always_inline int lb_addr_eq(const struct lb_addr *a, const struct lb_addr *b)
{
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) | (a->w[3] ^ b->w[3])) == 0;
}

/* `l2` is where the answer for `dst` is kept (NULL: nowhere). */
static __always_inline int lb_xmit(struct xdp_md *ctx, struct ethhdr *eth, __u8 family, __u8 proto,
				   const struct lb_addr *src, const struct lb_addr *dst, __u16 tot_len,
				   const struct lb_backend *explicit_mac, struct lb_l2 *l2,
				   const struct lb_config *cfg, __u64 now, struct lb_counters *vc)
{
	struct bpf_fib_lookup p = {};
	int rc;

	if (explicit_mac) {
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, explicit_mac->mac, ETH_ALEN);
		return XDP_TX;
	}
	if (l2 && l2->expires > now && lb_addr_eq(&l2->dst, dst))
		return lb_l2_out(ctx, eth, l2->smac, l2->dmac, l2->ifindex);
	p.ifindex = ctx->ingress_ifindex;
	p.l4_protocol = proto;
	p.tot_len = tot_len;
	if (family == LB_FAMILY_V4) {
		p.family = AF_INET;
		p.ipv4_src = src->w[0];
		p.ipv4_dst = dst->w[0];
	} else {
		p.family = AF_INET6;
		__builtin_memcpy(p.ipv6_src, src, 16);
		__builtin_memcpy(p.ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (l2) {
			l2->dst = *dst;
			l2->expires = now + lb_ticks(cfg, LB_L2_CACHE_S);
			l2->ifindex = p.ifindex;
			__builtin_memcpy(l2->smac, p.smac, ETH_ALEN);
			__builtin_memcpy(l2->dmac, p.dmac, ETH_ALEN);
		}
		return lb_l2_out(ctx, eth, p.smac, p.dmac, p.ifindex);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (vc)
			vc->fib_no_neigh++;
		return XDP_PASS;
	}
	if (vc)
		vc->fib_failures++;
	return XDP_DROP;
}

#endif
