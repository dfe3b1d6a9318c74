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
 * effect within that time; an unresolved neighbour is never kept. So is the
 * route's MTU, which packets that grow (encapsulated) are checked against.
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

/* A MAC address in two loads and two stores rather than six of each
 * (the header is packed: clang would otherwise copy byte by byte). */
static __always_inline void lb_mac_copy(__u8 *to, const __u8 *from)
{
	*(__u32 *)to = *(const __u32 *)from;
	*(__u16 *)(to + 4) = *(const __u16 *)(from + 4);
}

static __always_inline int lb_l2_out(struct xdp_md *ctx, struct ethhdr *eth, const __u8 *smac, const __u8 *dmac,
				     __u32 ifindex)
{
	lb_mac_copy(eth->h_source, smac);
	lb_mac_copy(eth->h_dest, dmac);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

static __always_inline int lb_addr_eq(const struct lb_addr *a, const struct lb_addr *b)
{
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) | (a->w[3] ^ b->w[3])) == 0;
}

/* Where an answer no entry keeps goes (a reply fragment's, an ICMP
 * error's without a flow to keep it in): per CPU, one place, checked like
 * any (its `dst` must match). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_l2);
} lb_l2_scratch_map SEC(".maps");

static __always_inline struct lb_l2 *lb_l2_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lb_l2_scratch_map, &zero);
}

/* To a configured MAC: out where the packet came in. */
static __always_inline int lb_l2_to_mac(struct ethhdr *eth, const struct lb_backend *be)
{
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
	return XDP_TX;
}

/* The verdict for a FIB lookup's result `rc` (the answer in `l2`). While
 * the neighbour is unresolved the packet goes up to the kernel, which
 * forwards it and resolves the neighbour. */
static __always_inline int lb_l2_result(struct xdp_md *ctx, struct ethhdr *eth, int rc, const struct lb_l2 *l2,
					struct lb_counters *vc)
{
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return lb_l2_out(ctx, eth, l2->smac, l2->dmac, l2->ifindex);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (vc)
			vc->fib_no_neigh++;
		return XDP_PASS;
	}
	if (vc)
		vc->fib_failures++;
	return XDP_DROP;
}

/* The lookup's parameters: here, not on the stack, which the program's
 * functions share (512 bytes for a chain of calls). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_fib_lookup);
} lb_fib_scratch SEC(".maps");

/* The FIB's answer for a packet of `tot_len` bytes from `src` to `dst`,
 * kept in `l2` on success; the route's MTU in *mtu (the kernel reports it
 * on success as on "fragmentation needed"). */
static __always_inline int lb_fib(struct xdp_md *ctx, __u8 family, __u8 proto, const struct lb_addr *src,
				  const struct lb_addr *dst, __u16 tot_len, struct lb_l2 *l2,
				  const struct lb_config *cfg, __u64 now, __u16 *mtu)
{
	struct bpf_fib_lookup *p;
	__u32 zero = 0;
	int rc;

	p = bpf_map_lookup_elem(&lb_fib_scratch, &zero);
	if (!p)
		return BPF_FIB_LKUP_RET_NOT_FWDED;
	__builtin_memset(p, 0, sizeof(*p));
	p->ifindex = ctx->ingress_ifindex;
	p->l4_protocol = proto;
	p->tot_len = tot_len;
	if (family == LB_FAMILY_V4) {
		p->family = AF_INET;
		p->ipv4_src = src->w[0];
		p->ipv4_dst = dst->w[0];
	} else {
		p->family = AF_INET6;
		__builtin_memcpy(p->ipv6_src, src, 16);
		__builtin_memcpy(p->ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, p, sizeof(*p), 0);
	*mtu = p->mtu_result;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		l2->dst = *dst;
		l2->expires = now + lb_ticks(cfg, LB_L2_CACHE_S);
		l2->ifindex = p->ifindex;
		l2->mtu = p->mtu_result;
		__builtin_memcpy(l2->smac, p->smac, ETH_ALEN);
		__builtin_memcpy(l2->dmac, p->dmac, ETH_ALEN);
	}
	return rc;
}

/* `l2` is where the answer for `dst` is kept; `be`, when not NULL, the
 * backend it goes to (whose configured MAC, if any, wins). */
static __always_inline int lb_xmit(struct xdp_md *ctx, struct ethhdr *eth, __u8 family, __u8 proto,
				   const struct lb_addr *src, const struct lb_addr *dst, __u16 tot_len,
				   const struct lb_backend *be, struct lb_l2 *l2,
				   const struct lb_config *cfg, __u64 now, struct lb_counters *vc)
{
	__u16 mtu;

	if (be && (be->flags & LB_BACKEND_MAC))
		return lb_l2_to_mac(eth, be);
	if (!l2)
		return XDP_ABORTED; /* every caller has a place for the answer */
	if (l2->expires > now && lb_addr_eq(&l2->dst, dst))
		return lb_l2_out(ctx, eth, l2->smac, l2->dmac, l2->ifindex);
	return lb_l2_result(ctx, eth, lb_fib(ctx, family, proto, src, dst, tot_len, l2, cfg, now, &mtu), l2, vc);
}

/* Where a packet that will grow by `grow` bytes to `tot_len` goes, into
 * `l2` (the backend's lb_l2_cache entry): BPF_FIB_LKUP_RET_SUCCESS when it
 * holds a fresh answer the packet fits, BPF_FIB_LKUP_RET_FRAG_NEEDED with
 * the MTU in *mtu, or another lookup result. A backend with a configured
 * MAC leaves where the packet came in, whose device MTU then applies. */
static __always_inline int lb_route(struct xdp_md *ctx, __u8 family, __u8 proto, const struct lb_addr *src,
				    const struct lb_addr *dst, __u16 tot_len, __u16 grow, int explicit_mac,
				    struct lb_l2 *l2, const struct lb_config *cfg, __u64 now, __u16 *mtu)
{
	if (explicit_mac) {
		__u32 dev_mtu = 0;

		if (bpf_check_mtu(ctx, 0, &dev_mtu, grow, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED) {
			*mtu = dev_mtu;
			return BPF_FIB_LKUP_RET_FRAG_NEEDED;
		}
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	if (l2->expires > now && lb_addr_eq(&l2->dst, dst)) {
		*mtu = l2->mtu;
		return tot_len > l2->mtu ? BPF_FIB_LKUP_RET_FRAG_NEEDED : BPF_FIB_LKUP_RET_SUCCESS;
	}
	return lb_fib(ctx, family, proto, src, dst, tot_len, l2, cfg, now, mtu);
}

#endif
