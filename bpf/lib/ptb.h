/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * ICMP "fragmentation needed" (RFC 792, RFC 1191) and ICMPv6 Packet Too Big
 * (RFC 4443 3.2) replies, built in place from the packet that did not fit
 * and sent back out of the interface it arrived on (XDP_TX):
 *
 *   before   [L2][IP header][8+ bytes of data ...]
 *   after    [L2 with MACs swapped][new IP][ICMP][IP header][quoted data]
 *
 * bpf_xdp_adjust_head() opens a gap in front of the frame, the L2 header
 * moves to the new start, and the offending header is quoted where it
 * already is; bpf_xdp_adjust_tail() trims what is not quoted. The reply
 * comes from the address the packet was sent to. Whether to answer at all
 * (the RFCs' rules: xdplb_ptb*_check(), and any rate limit) is the
 * caller's; the MTU to advertise too.
 */
#ifndef XDPLB_PTB_H
#define XDPLB_PTB_H

#include <linux/icmpv6.h>
#include "lib/parsing.h"
#include "lib/csum.h"
#include "lib/icmp.h"

#define XDPLB_PTB4_GAP (sizeof(struct iphdr) + sizeof(struct icmphdr))
#define XDPLB_PTB6_GAP (sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr))
/* RFC 4443 2.4(c): quote as much as fits in the IPv6 minimum MTU. */
#define XDPLB_IPV6_MIN_MTU 1280
#define XDPLB_PTB6_QUOTE_MAX (XDPLB_IPV6_MIN_MTU - XDPLB_PTB6_GAP)
#define XDPLB_REPLY_TTL 64

enum xdplb_ptb_result {
	XDPLB_PTB_SENT,		/* reply built: XDP_TX */
	XDPLB_PTB_QUIET,	/* no reply allowed (RFC rules, rate limit): drop */
	XDPLB_PTB_ERR,		/* the packet cannot be quoted: drop */
	XDPLB_PTB_MEM_ERR,	/* the frame could not be resized: drop */
};

/* Trim the frame to `len` bytes. The current length comes from the helper:
 * arithmetic on pkt_end is something the verifier refuses. */
static __always_inline int xdplb_resize(struct xdp_md *ctx, __u32 len)
{
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)bpf_xdp_get_buff_len(ctx));
}

/* After the head moved back by `gap` bytes the old L2 header starts at
 * data + gap: write it at data with source and destination swapped. The copy
 * is XDPLB_L2_MAX bytes whatever the VLAN count; what lies past the real L2
 * header is overwritten by the new IP header next. */
static __always_inline int xdplb_reply_l2(void *data, void *end, __u32 gap)
{
	__u8 *n = data, *o = data + gap;

	if (data + gap + XDPLB_L2_MAX > end)
		return -1;
	__builtin_memcpy(n, o + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(n + ETH_ALEN, o, ETH_ALEN);
	__builtin_memcpy(n + 2 * ETH_ALEN, o + 2 * ETH_ALEN, XDPLB_L2_MAX - 2 * ETH_ALEN);
	return 0;
}

/* A reply's addresses: no unspecified, multicast, broadcast or class E. */
static __always_inline int xdplb_unicast4(__be32 addr)
{
	return addr != 0 && (bpf_ntohl(addr) >> 28) < 0xe;
}

static __always_inline int xdplb_unicast6(const struct in6_addr *a)
{
	return a->s6_addr[0] != 0xff &&
	       (a->s6_addr32[0] | a->s6_addr32[1] | a->s6_addr32[2] | a->s6_addr32[3]) != 0;
}

static __always_inline int xdplb_icmp4_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
	       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* May this IPv4 packet be answered? Its header and 8 bytes of data must be
 * there to quote; no reply to or from a non-unicast address, nor about an
 * ICMP error (RFC 1122 3.2.2). XDPLB_PTB_SENT means yes. */
static __always_inline int xdplb_ptb4_check(struct iphdr *ip, __u32 l2len, void *end)
{
	__u32 hlen = ip->ihl * 4;

	if (bpf_ntohs(ip->tot_len) < hlen + 8 || (void *)ip + hlen + 8 > end || l2len > XDPLB_L2_MAX)
		return XDPLB_PTB_ERR;
	if (!xdplb_unicast4(ip->saddr) || !xdplb_unicast4(ip->daddr))
		return XDPLB_PTB_QUIET;
	if (ip->protocol == IPPROTO_ICMP) {
		__u8 *type = (void *)ip + hlen;

		if ((void *)(type + 1) > end)
			return XDPLB_PTB_ERR;
		if (xdplb_icmp4_error(*type))
			return XDPLB_PTB_QUIET;
	}
	return XDPLB_PTB_SENT;
}

/* The same for IPv6; `l4` is the upper-layer header, `l4_proto` its
 * protocol. ICMPv6 types below 128 are errors, never answered (RFC 4443
 * 2.4(e)). */
static __always_inline int xdplb_ptb6_check(struct ipv6hdr *ip6, __u32 l2len, __u8 *l4, __u8 l4_proto, void *end)
{
	if (l2len > XDPLB_L2_MAX)
		return XDPLB_PTB_ERR;
	if (!xdplb_unicast6(&ip6->saddr) || !xdplb_unicast6(&ip6->daddr))
		return XDPLB_PTB_QUIET;
	if (l4_proto == IPPROTO_ICMPV6) {
		if ((void *)(l4 + 1) > end)
			return XDPLB_PTB_ERR;
		if (*l4 < 128)
			return XDPLB_PTB_QUIET;
	}
	return XDPLB_PTB_SENT;
}

/* ICMP type 3 code 4 advertising `mtu`, quoting the IPv4 header and the
 * first 8 bytes of its data (xdplb_ptb4_check() said yes). */
static __always_inline int xdplb_ptb4(struct xdp_md *ctx, struct iphdr *ip, __u32 l2len, __u16 mtu)
{
	__u32 hlen = ip->ihl * 4;
	__be32 saddr = ip->saddr, daddr = ip->daddr;
	struct icmphdr *icmp;
	struct iphdr *nip;
	void *data, *end;

	/* Bounded here, where the verifier needs it for the offsets below (the
	 * barrier keeps the compiler from dropping a check it saw before). */
	asm volatile("" : "+r"(l2len));
	if (l2len > XDPLB_L2_MAX)
		return XDPLB_PTB_ERR;
	if (bpf_xdp_adjust_head(ctx, -(int)XDPLB_PTB4_GAP))
		return XDPLB_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (xdplb_reply_l2(data, end, XDPLB_PTB4_GAP))
		return XDPLB_PTB_ERR;
	nip = data + l2len;
	if ((void *)nip + XDPLB_PTB4_GAP > end)
		return XDPLB_PTB_ERR;
	nip->version = 4;
	nip->ihl = 5;
	nip->tos = 0xc0; /* precedence "internetwork control", as Linux sends ICMP errors */
	nip->tot_len = bpf_htons(XDPLB_PTB4_GAP + hlen + 8);
	nip->id = 0;
	nip->frag_off = 0;
	nip->ttl = XDPLB_REPLY_TTL;
	nip->protocol = IPPROTO_ICMP;
	nip->check = 0;
	nip->saddr = daddr; /* from the address the packet was sent to */
	nip->daddr = saddr;
	icmp = (void *)(nip + 1);
	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(mtu);

	if (xdplb_resize(ctx, l2len + XDPLB_PTB4_GAP + hlen + 8))
		return XDPLB_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	nip = data + l2len;
	if ((void *)nip + XDPLB_PTB4_GAP > end)
		return XDPLB_PTB_ERR;
	nip->check = xdplb_csum_fold(xdplb_csum_words((void *)nip, sizeof(*nip) / 2, end));
	icmp = (void *)(nip + 1);
	icmp->checksum = xdplb_csum_fold(xdplb_csum_bytes(icmp, end, XDPLB_IPV6_MIN_MTU));
	return XDPLB_PTB_SENT;
}

/* ICMPv6 Packet Too Big advertising `mtu`, quoting as much of the packet as
 * fits in 1280 bytes (xdplb_ptb6_check() said yes). */
static __always_inline int xdplb_ptb6(struct xdp_md *ctx, struct ipv6hdr *ip6, __u32 l2len, __u32 mtu)
{
	__u32 len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	__u32 quote = len < XDPLB_PTB6_QUOTE_MAX ? len : XDPLB_PTB6_QUOTE_MAX;
	struct ipv6hdr *nip6, *old;
	struct icmp6hdr *icmp6;
	void *data, *end;
	__u64 sum;

	asm volatile("" : "+r"(l2len));
	if (l2len > XDPLB_L2_MAX)
		return XDPLB_PTB_ERR;
	if (bpf_xdp_adjust_head(ctx, -(int)XDPLB_PTB6_GAP))
		return XDPLB_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (xdplb_reply_l2(data, end, XDPLB_PTB6_GAP))
		return XDPLB_PTB_ERR;
	nip6 = data + l2len;
	old = (void *)nip6 + XDPLB_PTB6_GAP;
	if ((void *)(old + 1) > end)
		return XDPLB_PTB_ERR;
	*(__be32 *)nip6 = bpf_htonl(0x60000000); /* version 6, class 0, flow 0 */
	nip6->payload_len = bpf_htons(sizeof(*icmp6) + quote);
	nip6->nexthdr = IPPROTO_ICMPV6;
	nip6->hop_limit = XDPLB_REPLY_TTL;
	nip6->saddr = old->daddr; /* from the address the packet was sent to */
	nip6->daddr = old->saddr;
	icmp6 = (void *)(nip6 + 1);
	icmp6->icmp6_type = ICMPV6_PKT_TOOBIG;
	icmp6->icmp6_code = 0;
	icmp6->icmp6_cksum = 0;
	icmp6->icmp6_mtu = bpf_htonl(mtu);

	if (xdplb_resize(ctx, l2len + XDPLB_PTB6_GAP + quote))
		return XDPLB_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	nip6 = data + l2len;
	if ((void *)nip6 + XDPLB_PTB6_GAP > end)
		return XDPLB_PTB_ERR;
	/* Pseudo-header: both addresses, upper-layer length, next header. */
	sum = xdplb_csum_words((void *)&nip6->saddr, 16, end);
	sum += bpf_htons(sizeof(*icmp6) + quote) + bpf_htons(IPPROTO_ICMPV6);
	icmp6 = (void *)(nip6 + 1);
	icmp6->icmp6_cksum = xdplb_csum_fold(sum + xdplb_csum_bytes(icmp6, end, XDPLB_IPV6_MIN_MTU));
	return XDPLB_PTB_SENT;
}

#endif
