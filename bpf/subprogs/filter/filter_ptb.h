/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Packet Too Big replies, built in place from a dropped first fragment and
 * sent back out of the interface it arrived on (XDP_TX):
 *
 *   before   [L2][IP header][8+ bytes of data ...]
 *   after    [L2 with MACs swapped][new IP][ICMP][IP header][quoted data]
 *
 * bpf_xdp_adjust_head() opens a gap in front of the frame, the L2 header
 * moves to the new start, and the offending header is quoted where it
 * already is; bpf_xdp_adjust_tail() trims what is not quoted.
 */
#ifndef XDPLB_FILTER_PTB_H
#define XDPLB_FILTER_PTB_H

#include <linux/icmpv6.h>
#include "lib/parsing.h"
#include "lib/csum.h"
#include "filter_maps.h"
#include "lib/icmp.h"

/* Ethernet and up to two VLAN tags. */
#define FILTER_L2_MAX (sizeof(struct ethhdr) + XDPLB_VLAN_MAX * sizeof(struct xdplb_vlan_hdr))
#define FILTER_PTB4_GAP (sizeof(struct iphdr) + sizeof(struct icmphdr))
#define FILTER_PTB6_GAP (sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr))
/* RFC 4443 2.4(c): quote as much as fits in the IPv6 minimum MTU. */
#define FILTER_IPV6_MIN_MTU 1280
#define FILTER_PTB6_QUOTE_MAX (FILTER_IPV6_MIN_MTU - FILTER_PTB6_GAP)
#define FILTER_REPLY_TTL 64
/* Enough 16-bit words for the largest ICMP body built here (1240 bytes). */
#define FILTER_CSUM_WORDS 640

enum filter_ptb_result {
	FILTER_PTB_SENT,	/* reply built: XDP_TX */
	FILTER_PTB_QUIET,	/* no reply allowed (rate limit, RFC rules): drop */
	FILTER_PTB_ERR,		/* the fragment cannot be quoted: drop */
	FILTER_PTB_MEM_ERR,	/* the frame could not be resized: drop */
};

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

/* One's complement sum of the frame from p to its end, as 16-bit words in
 * memory order (a trailing odd byte padded with zero). */
static __always_inline __u64 filter_csum_tail(void *p, void *end)
{
	__u64 sum = 0;

	for (int i = 0; i < FILTER_CSUM_WORDS; i++) {
		if (p + 2 > end)
			break;
		sum += *(__u16 *)p;
		p += 2;
	}
	if (p + 1 <= end)
		sum += *(__u8 *)p;
	return sum;
}

/* After the head moved back by `gap` bytes the old L2 header starts at
 * data + gap: write it at data with source and destination swapped. The copy
 * is FILTER_L2_MAX bytes whatever the VLAN count; what lies past the real L2
 * header is overwritten by the new IP header next. */
static __always_inline int filter_reply_l2(void *data, void *end, __u32 gap)
{
	__u8 *n = data, *o = data + gap;

	if (data + gap + FILTER_L2_MAX > end)
		return -1;
	__builtin_memcpy(n, o + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(n + ETH_ALEN, o, ETH_ALEN);
	__builtin_memcpy(n + 2 * ETH_ALEN, o + 2 * ETH_ALEN, FILTER_L2_MAX - 2 * ETH_ALEN);
	return 0;
}

/* Trim the frame to `len` bytes. The current length comes from the helper:
 * arithmetic on pkt_end is something the verifier refuses. */
static __always_inline int filter_resize(struct xdp_md *ctx, __u32 len)
{
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)bpf_xdp_get_buff_len(ctx));
}

/* A reply's addresses: no unspecified, multicast, broadcast or class E. */
static __always_inline int filter_unicast4(__be32 addr)
{
	return addr != 0 && (bpf_ntohl(addr) >> 28) < 0xe;
}

static __always_inline int filter_icmp4_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
	       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* ICMP type 3 code 4 (RFC 792, RFC 1191) for an IPv4 first fragment:
 * next-hop MTU = the fragment's total length, quoting its header and the
 * first 8 bytes of its data. */
static __always_inline int filter_ptb4(struct xdp_md *ctx, struct iphdr *ip, __u32 l2len, __u32 max_pps)
{
	void *data, *end = (void *)(long)ctx->data_end;
	__u32 hlen = ip->ihl * 4;
	__u16 frag_len = bpf_ntohs(ip->tot_len);
	__be32 saddr = ip->saddr, daddr = ip->daddr;
	struct icmphdr *icmp;
	struct iphdr *nip;

	if (frag_len < hlen + 8 || (void *)ip + hlen + 8 > end || l2len > FILTER_L2_MAX)
		return FILTER_PTB_ERR;
	if (!filter_unicast4(saddr) || !filter_unicast4(daddr))
		return FILTER_PTB_QUIET;
	if (ip->protocol == IPPROTO_ICMP) {
		/* No ICMP error about an ICMP error (RFC 1122 3.2.2). */
		__u8 *type = (void *)ip + hlen;

		if ((void *)(type + 1) > end)
			return FILTER_PTB_ERR;
		if (filter_icmp4_error(*type))
			return FILTER_PTB_QUIET;
	}
	if (!filter_ptb_token(max_pps))
		return FILTER_PTB_QUIET;

	if (bpf_xdp_adjust_head(ctx, -(int)FILTER_PTB4_GAP))
		return FILTER_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (filter_reply_l2(data, end, FILTER_PTB4_GAP))
		return FILTER_PTB_ERR;
	nip = data + l2len;
	if ((void *)nip + FILTER_PTB4_GAP > end)
		return FILTER_PTB_ERR;
	nip->version = 4;
	nip->ihl = 5;
	nip->tos = 0xc0; /* precedence "internetwork control", as Linux sends ICMP errors */
	nip->tot_len = bpf_htons(FILTER_PTB4_GAP + hlen + 8);
	nip->id = 0;
	nip->frag_off = 0;
	nip->ttl = FILTER_REPLY_TTL;
	nip->protocol = IPPROTO_ICMP;
	nip->check = 0;
	nip->saddr = daddr; /* from the address the fragment was sent to */
	nip->daddr = saddr;
	icmp = (void *)(nip + 1);
	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(frag_len);

	if (filter_resize(ctx, l2len + FILTER_PTB4_GAP + hlen + 8))
		return FILTER_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	nip = data + l2len;
	if ((void *)nip + FILTER_PTB4_GAP > end)
		return FILTER_PTB_ERR;
	nip->check = xdplb_csum_fold(xdplb_csum_words((void *)nip, sizeof(*nip) / 2, end));
	icmp = (void *)(nip + 1);
	icmp->checksum = xdplb_csum_fold(filter_csum_tail(icmp, end));
	return FILTER_PTB_SENT;
}

static __always_inline int filter_unicast6(const struct in6_addr *a)
{
	return a->s6_addr[0] != 0xff &&
	       (a->s6_addr32[0] | a->s6_addr32[1] | a->s6_addr32[2] | a->s6_addr32[3]) != 0;
}

/* ICMPv6 type 2 (RFC 4443 3.2) for an IPv6 first fragment: MTU = the
 * fragment's size, quoting as much of it as fits in 1280 bytes. `l4` is
 * what follows the Fragment header, `l4_proto` its protocol. */
static __always_inline int filter_ptb6(struct xdp_md *ctx, struct ipv6hdr *ip6, __u32 l2len, __u8 *l4,
				       __u8 l4_proto, __u32 max_pps)
{
	void *data, *end = (void *)(long)ctx->data_end;
	__u32 frag_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	__u32 quote = frag_len < FILTER_PTB6_QUOTE_MAX ? frag_len : FILTER_PTB6_QUOTE_MAX;
	struct ipv6hdr *nip6, *old;
	struct icmp6hdr *icmp6;
	__u64 sum;

	if (l2len > FILTER_L2_MAX)
		return FILTER_PTB_ERR;
	if (!filter_unicast6(&ip6->saddr) || !filter_unicast6(&ip6->daddr))
		return FILTER_PTB_QUIET;
	if (l4_proto == IPPROTO_ICMPV6) {
		/* Types below 128 are errors: never answered (RFC 4443 2.4(e)). */
		if ((void *)(l4 + 1) > end)
			return FILTER_PTB_ERR;
		if (*l4 < 128)
			return FILTER_PTB_QUIET;
	}
	if (!filter_ptb_token(max_pps))
		return FILTER_PTB_QUIET;

	if (bpf_xdp_adjust_head(ctx, -(int)FILTER_PTB6_GAP))
		return FILTER_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (filter_reply_l2(data, end, FILTER_PTB6_GAP))
		return FILTER_PTB_ERR;
	nip6 = data + l2len;
	old = (void *)nip6 + FILTER_PTB6_GAP;
	if ((void *)(old + 1) > end)
		return FILTER_PTB_ERR;
	*(__be32 *)nip6 = bpf_htonl(0x60000000); /* version 6, class 0, flow 0 */
	nip6->payload_len = bpf_htons(sizeof(*icmp6) + quote);
	nip6->nexthdr = IPPROTO_ICMPV6;
	nip6->hop_limit = FILTER_REPLY_TTL;
	nip6->saddr = old->daddr; /* from the address the fragment was sent to */
	nip6->daddr = old->saddr;
	icmp6 = (void *)(nip6 + 1);
	icmp6->icmp6_type = ICMPV6_PKT_TOOBIG;
	icmp6->icmp6_code = 0;
	icmp6->icmp6_cksum = 0;
	icmp6->icmp6_mtu = bpf_htonl(frag_len);

	if (filter_resize(ctx, l2len + FILTER_PTB6_GAP + quote))
		return FILTER_PTB_MEM_ERR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	nip6 = data + l2len;
	if ((void *)nip6 + FILTER_PTB6_GAP > end)
		return FILTER_PTB_ERR;
	/* Pseudo-header: both addresses, upper-layer length, next header. */
	sum = xdplb_csum_words((void *)&nip6->saddr, 16, end);
	sum += bpf_htons(sizeof(*icmp6) + quote) + bpf_htons(IPPROTO_ICMPV6);
	icmp6 = (void *)(nip6 + 1);
	icmp6->icmp6_cksum = xdplb_csum_fold(sum + filter_csum_tail(icmp6, end));
	return FILTER_PTB_SENT;
}

#endif
