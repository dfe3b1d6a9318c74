/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Header parsing with bounds checks the verifier accepts. A cursor walks the
 * frame; every parse_* returns the next protocol, or -1 when the header is
 * truncated or malformed (the caller decides what that costs).
 */
#ifndef XDPLB_PARSING_H
#define XDPLB_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_endian.h>

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define XDPLB_VLAN_MAX 2
/* Ethernet and up to two VLAN tags. */
#define XDPLB_L2_MAX (sizeof(struct ethhdr) + XDPLB_VLAN_MAX * 4)

struct xdplb_cursor {
	void *pos;
	void *end;
};

struct xdplb_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline void xdplb_cursor_init(struct xdplb_cursor *c, struct xdp_md *ctx)
{
	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
}

/* Ethernet, then up to two VLAN tags (802.1Q or 802.1ad): returns the inner
 * EtherType in network order, -1 on a truncated frame. */
static __always_inline int xdplb_parse_eth(struct xdplb_cursor *c, struct ethhdr **eth)
{
	struct ethhdr *e = c->pos;
	__be16 proto;

	if ((void *)(e + 1) > c->end)
		return -1;
	*eth = e;
	c->pos = e + 1;
	proto = e->h_proto;
#pragma unroll
	for (int i = 0; i < XDPLB_VLAN_MAX; i++) {
		struct xdplb_vlan_hdr *v = c->pos;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(v + 1) > c->end)
			return -1;
		proto = v->proto;
		c->pos = v + 1;
	}
	return proto;
}

/* IPv4: version 4, IHL at least 5, the whole header and total length inside
 * the frame. Returns the L4 protocol; the cursor moves past the options. */
static __always_inline int xdplb_parse_ipv4(struct xdplb_cursor *c, struct iphdr **iph)
{
	struct iphdr *ip = c->pos;
	__u32 hlen;

	if ((void *)(ip + 1) > c->end || ip->version != 4)
		return -1;
	hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip) || c->pos + hlen > c->end)
		return -1;
	if ((void *)ip + bpf_ntohs(ip->tot_len) > c->end || bpf_ntohs(ip->tot_len) < hlen)
		return -1;
	*iph = ip;
	c->pos += hlen;
	return ip->protocol;
}

/* IPv6: version 6, the fixed header and the payload length inside the frame.
 * Returns nexthdr (extension headers are the caller's business). */
static __always_inline int xdplb_parse_ipv6(struct xdplb_cursor *c, struct ipv6hdr **ip6h)
{
	struct ipv6hdr *ip6 = c->pos;

	if ((void *)(ip6 + 1) > c->end || ip6->version != 6)
		return -1;
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > c->end)
		return -1;
	*ip6h = ip6;
	c->pos = ip6 + 1;
	return ip6->nexthdr;
}

/* The IPv6 Fragment extension header (IPPROTO_FRAGMENT, RFC 8200 4.5); the
 * kernel's struct frag_hdr is not in the UAPI headers. */
struct xdplb_frag6_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3, then 2 bits, then M */
	__be32 identification;
};

/* Copy the L2 header (`l2len` bytes: Ethernet and 0, 1 or 2 VLAN tags)
 * from `from` to `to` with `proto` as its EtherType: exactly that many
 * bytes (what follows at `to` is a packet to keep), the two places possibly
 * overlapping: every byte is read before any is written. Constant offsets
 * in each case, as the verifier wants them. The caller has checked both
 * spans against the end of the frame. */
static __always_inline void xdplb_l2_move(void *to, const void *from, __u32 l2len, __be16 proto)
{
	__u64 a = *(const __u64 *)from;

	if (l2len == sizeof(struct ethhdr)) {
		__u32 b = *(const __u32 *)(from + 8);

		*(__u64 *)to = a;
		*(__u32 *)(to + 8) = b;
		*(__be16 *)(to + 12) = proto;
	} else if (l2len == sizeof(struct ethhdr) + 4) {
		__u64 b = *(const __u64 *)(from + 8);

		*(__u64 *)to = a;
		*(__u64 *)(to + 8) = b;
		*(__be16 *)(to + 16) = proto;
	} else {
		__u64 b = *(const __u64 *)(from + 8);
		__u32 c = *(const __u32 *)(from + 16);

		*(__u64 *)to = a;
		*(__u64 *)(to + 8) = b;
		*(__u32 *)(to + 16) = c;
		*(__be16 *)(to + 20) = proto;
	}
}

static __always_inline int xdplb_ipv4_is_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x3fff)) != 0; /* MF set or offset != 0 */
}

static __always_inline int xdplb_ipv4_is_first_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x1fff)) == 0 && (ip->frag_off & bpf_htons(0x2000));
}

#endif
