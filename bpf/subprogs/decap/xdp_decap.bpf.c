// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The backend's side of direct server return (a slot program): a packet the
 * balancer encapsulated to one of this backend's tunnel addresses leaves its
 * outer header here and goes on (XDP_PASS) as the client sent it, its L2
 * header kept with the inner EtherType. Kernels without the ipip, ip6_tunnel
 * or fou modules need nothing else.
 *
 * - IPIP: IPv4 in IPv4 (protocol 4), IPv6 in IPv6 (41), IPv4 in IPv6 (4).
 * - GUE, UDP to the configured port: variant 1 (the inner IP header right
 *   after UDP: its version says the family) and variant 0 (a 4-byte header,
 *   then Hlen words of optional fields, then the inner packet of protocol 4
 *   or 41). decap_gue() finds where the optional fields are: without flags
 *   they are private data, the field a stateless balancer fills.
 *
 * Everything else passes untouched, tunnel packets for other addresses and
 * GUE control messages counted as not ours. A tunnel packet to us that is
 * cut short or whose lengths or versions disagree is dropped and counted.
 * Nor are the outer checksums verified: the outer header is thrown away,
 * what in it matters (addresses, protocol, lengths) is checked as read, and
 * the inner packet carries its own checksums, which the stack verifies
 * (the outer UDP checksum would mean reading every byte; the IPv4 header's
 * cost a fifth of the decapsulation).
 */
#include <xdplb/slot.h>
#include "lib/parsing.h"
#include "decap_maps.h"

#define DECAP_GUE_HLEN_MASK 0x1f
#define DECAP_GUE_CONTROL 0x20

/* A tunnel packet to us, as far as it has been read. */
struct decap_tunnel {
	void *inner; /* the inner IP header */
	__u32 avail; /* bytes of the outer packet from `inner` on */
	__u8 family; /* the inner packet's: 4 or 6 */
	__u8 gue; /* GUE, not IPIP */
};

enum decap_verdict {
	DECAP_NONE = -1, /* no tunnel packet at all: the common case, counted nowhere */
	DECAP_DONE, /* `t` describes the inner packet */
	DECAP_NOT_OURS, /* pass untouched, counted */
	DECAP_MALFORMED, /* drop, counted */
};

static __always_inline struct decap_stats *decap_stats_row(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&decap_stats, &zero);
}

/* The UDP payload at `g` (`avail` bytes) as GUE: where the inner packet
 * starts. Variant 0's optional fields (Hlen words) lie between its 4-byte
 * header and the inner packet. */
static __always_inline int decap_gue(void *g, __u32 avail, void *end, struct decap_tunnel *t)
{
	__u8 *h = g;
	__u32 opts;

	if (avail < 1 || (void *)(h + 1) > end)
		return DECAP_MALFORMED;
	switch (h[0] >> 6) {
	case 1: /* variant 1: an IPv4 (0100) or IPv6 (0110) header */
		t->family = h[0] >> 4;
		t->inner = g;
		t->avail = avail;
		return DECAP_DONE;
	case 0:
		if (avail < 4 || (void *)(h + 4) > end)
			return DECAP_MALFORMED;
		if (h[0] & DECAP_GUE_CONTROL)
			return DECAP_NOT_OURS; /* a control message, not a packet to deliver */
		if (h[1] == IPPROTO_IPIP)
			t->family = 4;
		else if (h[1] == IPPROTO_IPV6)
			t->family = 6;
		else
			return DECAP_NOT_OURS; /* carries something other than IP */
		opts = 4 + (h[0] & DECAP_GUE_HLEN_MASK) * 4;
		if (opts > avail)
			return DECAP_MALFORMED;
		t->inner = g + opts;
		t->avail = avail - opts;
		return DECAP_DONE;
	default: /* variants 2 and 3 are not defined */
		return DECAP_MALFORMED;
	}
}

/* A UDP datagram (`avail` bytes from `udp`) to the GUE port. */
static __always_inline int decap_udp(struct udphdr *udp, __u32 avail, void *end, struct decap_tunnel *t)
{
	__u32 len;

	if ((void *)(udp + 1) > end)
		return DECAP_MALFORMED;
	len = bpf_ntohs(udp->len);
	if (len < sizeof(*udp) || len > avail)
		return DECAP_MALFORMED;
	t->gue = 1;
	return decap_gue(udp + 1, len - sizeof(*udp), end, t);
}

/* The inner packet: its version the family the outer header said, its
 * header and its length inside what the outer packet carries. */
static __always_inline int decap_inner_ok(const struct decap_tunnel *t, void *end)
{
	if (t->family == 4) {
		struct iphdr *ip = t->inner;
		__u32 len;

		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return 0;
		len = bpf_ntohs(ip->tot_len);
		return len >= ip->ihl * 4u && len <= t->avail;
	}
	if (t->family == 6) {
		struct ipv6hdr *ip6 = t->inner;

		return (void *)(ip6 + 1) <= end && ip6->version == 6 &&
		       sizeof(*ip6) + bpf_ntohs(ip6->payload_len) <= t->avail;
	}
	return 0;
}

/* An IPv4 outer header: a tunnel packet to our IPv4 address? */
static __always_inline int decap_ipv4(struct iphdr *ip, void *end, const struct decap_config *cfg,
				      struct decap_tunnel *t)
{
	__u32 hlen, len;
	void *l4;

	if ((void *)(ip + 1) > end)
		return DECAP_NONE;
	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)ip + ip->ihl * 4;

		if (!cfg->gue_port || (void *)(udp + 1) > end || udp->dest != cfg->gue_port)
			return DECAP_NONE; /* any other UDP */
	} else if (ip->protocol != IPPROTO_IPIP) {
		return DECAP_NONE;
	}
	if (!(cfg->flags & DECAP_IPV4) || ip->daddr != cfg->addr4)
		return DECAP_NOT_OURS;
	hlen = ip->ihl * 4;
	len = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || hlen < sizeof(*ip) || len < hlen || (void *)ip + len > end ||
	    (void *)ip + hlen > end || xdplb_ipv4_is_fragment(ip))
		return DECAP_MALFORMED;
	l4 = (void *)ip + hlen;
	if (ip->protocol == IPPROTO_UDP)
		return decap_udp(l4, len - hlen, end, t);
	t->inner = l4;
	t->avail = len - hlen;
	t->family = 4;
	return DECAP_DONE;
}

/* An IPv6 outer header (no extension headers): a tunnel packet to our IPv6 address? */
static __always_inline int decap_ipv6(struct ipv6hdr *ip6, void *end, const struct decap_config *cfg,
				      struct decap_tunnel *t)
{
	const __be32 *a = ip6->daddr.in6_u.u6_addr32;
	__u32 len;

	if ((void *)(ip6 + 1) > end)
		return DECAP_NONE;
	if (ip6->nexthdr == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip6 + 1);

		if (!cfg->gue_port || (void *)(udp + 1) > end || udp->dest != cfg->gue_port)
			return DECAP_NONE;
	} else if (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6) {
		return DECAP_NONE;
	}
	if (!(cfg->flags & DECAP_IPV6) || ((a[0] ^ cfg->addr6[0]) | (a[1] ^ cfg->addr6[1]) | (a[2] ^ cfg->addr6[2]) |
					   (a[3] ^ cfg->addr6[3])))
		return DECAP_NOT_OURS;
	len = bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || (void *)(ip6 + 1) + len > end)
		return DECAP_MALFORMED;
	if (ip6->nexthdr == IPPROTO_UDP)
		return decap_udp((void *)(ip6 + 1), len, end, t);
	t->inner = ip6 + 1;
	t->avail = len;
	t->family = ip6->nexthdr == IPPROTO_IPIP ? 4 : 6;
	return DECAP_DONE;
}

static __always_inline int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct decap_tunnel t = {};
	struct decap_config *cfg;
	struct decap_stats *st;
	struct xdplb_cursor c;
	struct ethhdr *eth;
	__u32 zero = 0, bytes;
	__u64 l2len, gap;
	int l3, rc;

	xdplb_cursor_init(&c, ctx);
	l3 = xdplb_parse_eth(&c, &eth);
	if (l3 != bpf_htons(ETH_P_IP) && l3 != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&decap_config, &zero);
	if (!cfg)
		return XDP_PASS;
	rc = l3 == bpf_htons(ETH_P_IP) ? decap_ipv4(c.pos, end, cfg, &t) : decap_ipv6(c.pos, end, cfg, &t);
	if (rc == DECAP_NONE)
		return XDP_PASS;
	st = decap_stats_row();
	if (!st)
		return XDP_PASS;
	if (rc == DECAP_NOT_OURS) {
		st->not_ours++;
		return XDP_PASS;
	}
	if (rc != DECAP_DONE || !decap_inner_ok(&t, end))
		goto malformed;
	/* Scalars in 64-bit registers, bounded where they are used (see
	 * xdplb_add in slot.h). */
	l2len = c.pos - data;
	gap = t.inner - c.pos;
	asm volatile("" : "+r"(l2len));
	asm volatile("" : "+r"(gap));
	if (l2len > XDPLB_L2_MAX || gap > 255 || data + XDPLB_L2_MAX > end || data + gap + XDPLB_L2_MAX > end)
		goto malformed;
	bytes = end - data;
	xdplb_l2_move(data + gap, data, l2len, bpf_htons(t.family == 4 ? ETH_P_IP : ETH_P_IPV6));
	if (bpf_xdp_adjust_head(ctx, gap))
		return XDP_ABORTED;
	if (t.gue && t.family == 4)
		st->gue4++;
	else if (t.gue)
		st->gue6++;
	else if (t.family == 4)
		st->ipip4++;
	else
		st->ipip6++;
	st->bytes += bytes;
	return XDP_PASS;
malformed:
	st->malformed++;
	return XDP_DROP;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	return xdplb_return(ctx, decap(ctx));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
