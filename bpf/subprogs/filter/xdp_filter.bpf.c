// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The filter (ecbpf's xdp_filter, with IPv6 parity and per-prefix hits):
 * drops malformed frames, sources on the drop lists and, when frags_drop is
 * on, fragments, answering a first fragment with Packet Too Big. Everything
 * else goes on to the next slot.
 */
#include <xdplb/slot.h>
#include "lib/parsing.h"
#include "lib/csum.h"
#include "filter_maps.h"
#include "filter_ptb.h"

#ifndef IPPROTO_MH
#define IPPROTO_MH 135
#endif
/* Extension headers walked to find a Fragment header. */
#define FILTER_IPV6_EXT_MAX 6

#define FILTER_COUNT(field)                                               \
	do {                                                              \
		__u32 zero_ = 0;                                          \
		struct filter_stats *s_ = bpf_map_lookup_elem(&filter_stats, &zero_); \
		if (s_)                                                   \
			s_->field += 1;                                   \
	} while (0)

struct filter_ext6_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

static __always_inline int filter_listed4(__be32 addr)
{
	struct filter_key4 key = { .prefixlen = 32, .addr = addr };
	__u32 slash16 = bpf_ntohl(addr) >> (32 - FILTER_HINT4_BITS);
	__u32 *hint = bpf_map_lookup_elem(&filter_hint4, &slash16);
	struct filter_prefix *p;

	if (!hint || !*hint)
		return 0;
	p = bpf_map_lookup_elem(&filter_drop4, &key);
	if (!p)
		return 0;
	__sync_fetch_and_add(&p->hits, 1);
	return 1;
}

/* An IPv4-mapped source (::ffff:a.b.c.d) is a.b.c.d: looked up in the IPv4
 * list first, where xdp-filter also puts every listed prefix inside
 * ::ffff:0:0/96, so its longest match is there. */
static __always_inline int filter_listed6(const struct in6_addr *a)
{
	struct filter_key6 key = { .prefixlen = 128 };
	__u32 bucket = filter_hint6_bucket(a->s6_addr32[0]), *hint;
	struct filter_prefix *p;

	if (a->s6_addr32[0] == 0 && a->s6_addr32[1] == 0 && a->s6_addr32[2] == bpf_htonl(0xffff) &&
	    filter_listed4(a->s6_addr32[3]))
		return 1;
	hint = bpf_map_lookup_elem(&filter_hint6, &bucket);
	if (!hint || !*hint)
		return 0;
	__builtin_memcpy(key.addr, a->s6_addr32, sizeof(key.addr));
	p = bpf_map_lookup_elem(&filter_drop6, &key);
	if (!p)
		return 0;
	__sync_fetch_and_add(&p->hits, 1);
	return 1;
}

static __always_inline int filter_ptb_verdict(int result)
{
	switch (result) {
	case XDPLB_PTB_SENT:
		FILTER_COUNT(ptb_sent_count);
		return XDP_TX;
	case XDPLB_PTB_ERR:
		FILTER_COUNT(ptb_err_count);
		break;
	case XDPLB_PTB_MEM_ERR:
		FILTER_COUNT(ptb_mem_err_count);
		break;
	}
	return XDP_DROP;
}

static __always_inline int filter_ipv4(struct xdp_md *ctx, struct xdplb_cursor *c, __u32 l2len,
				       const struct filter_config *cfg)
{
	struct iphdr *ip;

	if (xdplb_parse_ipv4(c, &ip) < 0) {
		FILTER_COUNT(ip_header_err);
		return XDP_DROP;
	}
	if (filter_listed4(ip->saddr)) {
		FILTER_COUNT(ip_drop_count);
		return XDP_DROP;
	}
	if (!cfg->frags_drop || !xdplb_ipv4_is_fragment(ip))
		return XDP_PASS;
	FILTER_COUNT(ip_frag_drop_count);
	if (!cfg->ptb_max_pps || !xdplb_ipv4_is_first_fragment(ip))
		return XDP_DROP;
	return filter_ptb_verdict(filter_ptb4(ctx, ip, l2len, cfg->ptb_max_pps));
}

static __always_inline int filter_ipv6(struct xdp_md *ctx, struct xdplb_cursor *c, __u32 l2len,
				       const struct filter_config *cfg)
{
	struct xdplb_frag6_hdr *frag = 0;
	struct ipv6hdr *ip6;
	int nexthdr = xdplb_parse_ipv6(c, &ip6);

	if (nexthdr < 0) {
		FILTER_COUNT(ip6_header_err);
		return XDP_DROP;
	}
	if (filter_listed6(&ip6->saddr)) {
		FILTER_COUNT(ip6_drop_count);
		return XDP_DROP;
	}
	if (!cfg->frags_drop)
		return XDP_PASS;
	/* The Fragment header follows any Hop-by-Hop, Routing, Destination
	 * Options, Authentication or Mobility headers. */
#pragma unroll
	for (int i = 0; i < FILTER_IPV6_EXT_MAX; i++) {
		struct filter_ext6_hdr *h = c->pos;

		if (nexthdr == IPPROTO_FRAGMENT) {
			frag = c->pos;
			if ((void *)(frag + 1) > c->end) {
				FILTER_COUNT(ip6_header_err);
				return XDP_DROP;
			}
			break;
		}
		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING && nexthdr != IPPROTO_DSTOPTS &&
		    nexthdr != IPPROTO_AH && nexthdr != IPPROTO_MH)
			return XDP_PASS;
		if ((void *)(h + 1) > c->end) {
			FILTER_COUNT(ip6_header_err);
			return XDP_DROP;
		}
		nexthdr = h->nexthdr;
		c->pos += nexthdr == IPPROTO_AH ? (h->hdrlen + 2) * 4 : (h->hdrlen + 1) * 8;
	}
	if (!frag)
		return XDP_PASS;
	FILTER_COUNT(ip_frag_drop_count);
	/* First fragment: offset 0, more fragments to come. */
	if (!cfg->ptb_max_pps || (frag->frag_off & bpf_htons(0xfff9)) != bpf_htons(1))
		return XDP_DROP;
	return filter_ptb_verdict(filter_ptb6(ctx, ip6, l2len, (__u8 *)(frag + 1), frag->nexthdr, cfg->ptb_max_pps));
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	struct xdplb_cursor c;
	struct ethhdr *eth;
	__u32 zero = 0, l2len;
	struct filter_config *cfg = bpf_map_lookup_elem(&filter_config, &zero);
	int proto, action = XDP_PASS;

	xdplb_cursor_init(&c, ctx);
	proto = xdplb_parse_eth(&c, &eth);
	if (proto < 0) {
		FILTER_COUNT(eth_frame_err);
		return xdplb_return(ctx, XDP_DROP);
	}
	l2len = c.pos - (void *)(long)ctx->data;
	if (cfg && proto == bpf_htons(ETH_P_IP))
		action = filter_ipv4(ctx, &c, l2len, cfg);
	else if (cfg && proto == bpf_htons(ETH_P_IPV6))
		action = filter_ipv6(ctx, &c, l2len, cfg);
	return xdplb_return(ctx, action);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
