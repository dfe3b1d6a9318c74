/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The filter's Packet Too Big replies to dropped first fragments: the RFCs'
 * rules and a rate limit decide, lib/ptb.h builds the reply (advertising
 * the fragment's own size as the MTU).
 */
#ifndef XDPLB_FILTER_PTB_H
#define XDPLB_FILTER_PTB_H

#include "lib/ptb.h"
#include "filter_maps.h"

/* One reply token from this second's window, shared by every CPU. */
static __always_inline int filter_ptb_token(__u32 max_pps)
{
	__u32 zero = 0, now = bpf_ktime_get_ns() / 1000000000ULL;
	struct filter_ptb_window *w = bpf_map_lookup_elem(&filter_ptb, &zero);
	int granted = 0;

	if (!w)
		return 0;
	bpf_spin_lock(&w->lock);
	if (w->second != now) {
		w->second = now;
		w->sent = 0;
	}
	if (w->sent < max_pps) {
		w->sent++;
		granted = 1;
	}
	bpf_spin_unlock(&w->lock);
	return granted;
}

/* ICMP type 3 code 4 (RFC 792, RFC 1191) for an IPv4 first fragment:
 * next-hop MTU = the fragment's total length. */
static __always_inline int filter_ptb4(struct xdp_md *ctx, struct iphdr *ip, __u32 l2len, __u32 max_pps)
{
	int rc = xdplb_ptb4_check(ip, l2len, (void *)(long)ctx->data_end);

	if (rc != XDPLB_PTB_SENT)
		return rc;
	if (!filter_ptb_token(max_pps))
		return XDPLB_PTB_QUIET;
	return xdplb_ptb4(ctx, ip, l2len, bpf_ntohs(ip->tot_len));
}

/* ICMPv6 type 2 (RFC 4443 3.2) for an IPv6 first fragment: MTU = the
 * fragment's size. `l4` is what follows the Fragment header, `l4_proto`
 * its protocol. */
static __always_inline int filter_ptb6(struct xdp_md *ctx, struct ipv6hdr *ip6, __u32 l2len, __u8 *l4,
				       __u8 l4_proto, __u32 max_pps)
{
	int rc = xdplb_ptb6_check(ip6, l2len, l4, l4_proto, (void *)(long)ctx->data_end);

	if (rc != XDPLB_PTB_SENT)
		return rc;
	if (!filter_ptb_token(max_pps))
		return XDPLB_PTB_QUIET;
	return xdplb_ptb6(ctx, ip6, l2len, sizeof(*ip6) + bpf_ntohs(ip6->payload_len));
}

#endif
