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
 * Chaining (stateless balancing): a GUE variant-0 header whose private data
 * is 8 or 20 bytes names a previous backend (its IPv4 or IPv6 address) and
 * a generation (docs/ARCHITECTURE.md, "Stateless balancing"). A TCP
 * segment in such a packet that is not a SYN and for which this backend has no socket (bpf_skc_lookup_tcp() in the
 * interface's network namespace: established, a request, TIME_WAIT, or a
 * listener whose SYN cookie it completes) is not ours: it goes on to the
 * previous backend, as GUE variant 1 (no private data: a chained packet is
 * never chained again) from our own tunnel address. Everything else with a
 * previous backend is delivered here; without one, nothing is looked up.
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
#include "lib/csum.h"
#include "decap_maps.h"

#define DECAP_GUE_HLEN_MASK 0x1f
#define DECAP_GUE_CONTROL 0x20
/* Private data naming a previous backend: its address and a generation. */
#define DECAP_PRIV4 8
#define DECAP_PRIV6 20
#define DECAP_IP_DF 0x4000
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* A tunnel packet to us, as far as it has been read. */
struct decap_tunnel {
	void *inner; /* the inner IP header */
	void *outer; /* the outer IP header */
	struct udphdr *udp; /* GUE's */
	void *prev; /* the previous backend's address, in the private data */
	__u32 avail; /* bytes of the outer packet from `inner` on */
	__u16 inner_len; /* the inner packet's own length */
	__u8 family; /* the inner packet's: 4 or 6 */
	__u8 gue; /* GUE, not IPIP */
	__u8 prev_family; /* 4 or 6 with `prev`, else 0 */
	__u8 outer_family;
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
		/* No flags: the optional fields are private data; ours name a
		 * previous backend by their length. */
		if (!h[2] && !h[3] && opts == 4 + DECAP_PRIV4) {
			t->prev = h + 4;
			t->prev_family = 4;
		} else if (!h[2] && !h[3] && opts == 4 + DECAP_PRIV6) {
			t->prev = h + 4;
			t->prev_family = 6;
		}
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
	t->udp = udp;
	return decap_gue(udp + 1, len - sizeof(*udp), end, t);
}

/* The inner packet: its version the family the outer header said, its
 * header and its length inside what the outer packet carries. */
static __always_inline int decap_inner_ok(struct decap_tunnel *t, void *end)
{
	if (t->family == 4) {
		struct iphdr *ip = t->inner;
		__u32 len;

		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return 0;
		len = bpf_ntohs(ip->tot_len);
		t->inner_len = len;
		return len >= ip->ihl * 4u && len <= t->avail;
	}
	if (t->family == 6) {
		struct ipv6hdr *ip6 = t->inner;

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return 0;
		t->inner_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		return t->inner_len <= t->avail;
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
	t->outer = ip;
	t->outer_family = 4;
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
	t->outer = ip6;
	t->outer_family = 6;
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

/* The TCP header of the inner packet, when it is an unfragmented TCP
 * segment; its IP header's length in *iplen. */
static __always_inline struct tcphdr *decap_tcp(const struct decap_tunnel *t, void *end, __u32 *iplen)
{
	struct tcphdr *th;

	if (t->family == 4) {
		struct iphdr *ip = t->inner;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || xdplb_ipv4_is_fragment(ip))
			return NULL;
		th = (void *)ip + ip->ihl * 4;
		*iplen = sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = t->inner;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return NULL;
		th = (void *)(ip6 + 1);
		*iplen = sizeof(*ip6);
	}
	if ((void *)(th + 1) > end)
		return NULL;
	return th;
}

/* Whether a packet that names a previous backend is ours to deliver: a
 * SYN, anything but a TCP segment, or a segment of a socket of ours. A
 * listener found for a segment that is not a SYN owns it only when the
 * segment completes one of its SYN cookies, as the stack would accept it. */
static __always_inline int decap_owned(struct xdp_md *ctx, const struct decap_tunnel *t, void *end)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	struct tcphdr *th;
	__u32 iplen = 0, size;
	int owned = 1;

	th = decap_tcp(t, end, &iplen);
	if (!th || (th->syn && !th->ack))
		return 1;
	if (t->family == 4) {
		struct iphdr *ip = t->inner;

		if ((void *)(ip + 1) > end)
			return 1;
		tuple.ipv4.saddr = ip->saddr;
		tuple.ipv4.daddr = ip->daddr;
		tuple.ipv4.sport = th->source;
		tuple.ipv4.dport = th->dest;
		size = sizeof(tuple.ipv4);
	} else {
		struct ipv6hdr *ip6 = t->inner;

		if ((void *)(ip6 + 1) > end)
			return 1;
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
		tuple.ipv6.sport = th->source;
		tuple.ipv6.dport = th->dest;
		size = sizeof(tuple.ipv6);
	}
	sk = (struct bpf_sock *)bpf_skc_lookup_tcp(ctx, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	/* Forty bytes hold either header (an IPv4 segment has its TCP
	 * header after it): one constant bound for both. */
	if (sk->state == BPF_TCP_LISTEN && t->inner + sizeof(struct ipv6hdr) <= end)
		owned = bpf_tcp_check_syncookie(sk, t->inner, iplen, th, sizeof(*th)) == 0;
	bpf_sk_release(sk);
	return owned;
}

/* The inner TCP segment's one's complement sum, from its headers: its
 * checksum is valid (or the backend's stack drops it anyway), so the
 * segment sums to the complement of its pseudo-header's sum (local
 * checksum offload, as the balancer sums it). */
static __always_inline __u64 decap_inner_sum(const struct decap_tunnel *t, void *end)
{
	if (t->family == 4) {
		struct iphdr *ip = t->inner;
		__u64 pseudo;

		if ((void *)(ip + 1) > end)
			return 0;
		pseudo = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
			 bpf_htons(IPPROTO_TCP) + bpf_htons(t->inner_len - ip->ihl * 4);
		return xdplb_csum_fold(pseudo);
	} else {
		struct ipv6hdr *ip6 = t->inner;

		if ((void *)(ip6 + 1) > end)
			return 0;
		return xdplb_sum32(ip6, 1) + *(const __u16 *)((const void *)ip6 + 6) + (__u16)~bpf_htons(IPPROTO_TCP);
	}
}

/* Where the previous backend `dst` (of `family`) is reached, for a packet
 * of `len` bytes: a FIB answer kept per CPU for DECAP_L2_TICKS.
 * BPF_FIB_LKUP_RET_SUCCESS with `l2` filled, BPF_FIB_LKUP_RET_NO_NEIGH, or
 * another result (not reachable from here, or too big). */
static __always_inline int decap_route(struct xdp_md *ctx, __u8 family, const __be32 *src, const __be32 *dst, __u32 len,
				       struct decap_l2 *l2)
{
	struct bpf_fib_lookup fib = {};
	__u64 now = bpf_jiffies64();
	int rc;

	if (l2->family == family && l2->expires > now && !((l2->addr[0] ^ dst[0]) | (l2->addr[1] ^ dst[1]) |
							   (l2->addr[2] ^ dst[2]) | (l2->addr[3] ^ dst[3])))
		return len > l2->mtu ? BPF_FIB_LKUP_RET_FRAG_NEEDED : BPF_FIB_LKUP_RET_SUCCESS;
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = IPPROTO_UDP;
	fib.tot_len = len;
	if (family == 4) {
		fib.family = AF_INET;
		fib.ipv4_src = src[0];
		fib.ipv4_dst = dst[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, src, 16);
		__builtin_memcpy(fib.ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(l2->addr, dst, 16);
		l2->family = family;
		l2->expires = now + DECAP_L2_TICKS;
		l2->ifindex = fib.ifindex;
		l2->mtu = fib.mtu_result;
		__builtin_memcpy(l2->smac, fib.smac, ETH_ALEN);
		__builtin_memcpy(l2->dmac, fib.dmac, ETH_ALEN);
	}
	return rc;
}

/* Send the tunnel packet on to its previous backend as GUE variant 1 (no
 * private data), from our own tunnel address of that backend's family:
 * the outer headers rewritten in place right in front of the inner
 * packet, the UDP ports kept (the balancer's entropy), TOS kept, TTL one
 * less. The verdict, or -1 when it cannot go, nothing changed: the
 * previous backend is ourselves, we have no address of its family, no
 * route to it, the TTL is spent, or the packet is too big for the way. An
 * unresolved neighbour: the rewritten packet goes up to the stack, which
 * forwards it and resolves the neighbour (forwarding and accept_local on,
 * as the FIB lookup needs forwarding anyway). A function of its own: the
 * rare path, kept out of the common one's registers and code. */
static __noinline int decap_chain(struct xdp_md *ctx, const struct decap_config *cfg, const struct decap_tunnel *t,
				  __u64 l2len)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__be32 dst[4] = {}, src[4] = {}, label = 0;
	__u32 key, olen, total, w0, w1, w2;
	struct decap_l2 *l2;
	struct udphdr *u;
	__be16 sport, dport;
	__u8 tos, ttl, fam = t->prev_family;
	__u64 gap, sum;
	void *to, *hdr;
	int rc;

	if (fam == 4) {
		__be32 *a = t->prev;

		if (!a || (void *)(a + 1) > end || !(cfg->flags & DECAP_IPV4) || a[0] == cfg->addr4)
			return -1;
		dst[0] = a[0];
		src[0] = cfg->addr4;
		olen = sizeof(struct iphdr);
	} else {
		__be32 *a = t->prev;

		if (!a || (void *)(a + 4) > end || !(cfg->flags & DECAP_IPV6))
			return -1;
		if (!((a[0] ^ cfg->addr6[0]) | (a[1] ^ cfg->addr6[1]) | (a[2] ^ cfg->addr6[2]) | (a[3] ^ cfg->addr6[3])))
			return -1;
		__builtin_memcpy(dst, a, 16);
		__builtin_memcpy(src, cfg->addr6, 16);
		olen = sizeof(struct ipv6hdr);
	}
	u = t->udp;
	if (!u || (void *)(u + 1) > end)
		return -1;
	sport = u->source;
	dport = u->dest;
	if (t->outer_family == 4) {
		struct iphdr *ip = t->outer;

		if (!ip || (void *)(ip + 1) > end)
			return -1;
		tos = ip->tos;
		ttl = ip->ttl;
	} else {
		struct ipv6hdr *ip6 = t->outer;

		if (!ip6 || (void *)(ip6 + 1) > end)
			return -1;
		tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		ttl = ip6->hop_limit;
		label = *(__be32 *)ip6 & bpf_htonl(0xfffff);
	}
	if (ttl <= 1)
		return -1;
	ttl--;
	total = olen + sizeof(*u) + t->inner_len;
	key = ((dst[0] ^ dst[1] ^ dst[2] ^ dst[3]) * 0x9e3779b1) >> 24;
	l2 = bpf_map_lookup_elem(&decap_l2, &key);
	if (!l2)
		return -1;
	rc = decap_route(ctx, fam, src, dst, total, l2);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return -1;
	if (fam == 6)
		sum = decap_inner_sum(t, end);
	/* The new headers end where the inner packet starts. Scalars checked
	 * and used in one 64-bit register (see xdplb_add in slot.h). */
	gap = t->inner - data;
	asm volatile("" : "+r"(gap));
	gap -= l2len + olen + sizeof(*u);
	asm volatile("" : "+r"(gap));
	asm volatile("" : "+r"(l2len));
	if (gap > 255 || l2len > XDPLB_L2_MAX || l2len < sizeof(struct ethhdr))
		return -1;
	asm volatile("" : "+r"(gap));
	asm volatile("" : "+r"(l2len));
	to = data + gap;
	hdr = to + l2len;
	if (data + XDPLB_L2_MAX > end || to + XDPLB_L2_MAX > end || hdr + sizeof(struct ipv6hdr) + sizeof(*u) > end)
		return -1;
	xdplb_l2_move(to, data, l2len, bpf_htons(fam == 4 ? ETH_P_IP : ETH_P_IPV6));
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(to, l2->dmac, ETH_ALEN);
		__builtin_memcpy(to + ETH_ALEN, l2->smac, ETH_ALEN);
	}
	if (fam == 4) {
		struct iphdr *o = hdr;

		w0 = bpf_htonl(0x45000000 | (__u32)tos << 16 | total);
		w1 = bpf_htonl(DECAP_IP_DF);
		w2 = bpf_htonl((__u32)ttl << 24 | (__u32)IPPROTO_UDP << 16);
		*(__u32 *)o = w0;
		*((__u32 *)o + 1) = w1;
		*((__u32 *)o + 2) = w2;
		o->saddr = src[0];
		o->daddr = dst[0];
		o->check = xdplb_csum_fold((__u64)w0 + w1 + w2 + src[0] + dst[0]);
		u = (void *)(o + 1);
		u->source = sport;
		u->dest = dport;
		*((__u32 *)u + 1) = bpf_htonl((total - olen) << 16); /* length, checksum 0 (as FOU sends it) */
	} else {
		struct ipv6hdr *o6 = hdr;
		__u16 check;

		*(__be32 *)o6 = bpf_htonl(0x60000000 | (__u32)tos << 20) | label;
		*((__be32 *)o6 + 1) = bpf_htonl((total - olen) << 16 | (__u32)IPPROTO_UDP << 8 | ttl);
		__builtin_memcpy(&o6->saddr, src, 16);
		__builtin_memcpy(&o6->daddr, dst, 16);
		u = (void *)(o6 + 1);
		u->source = sport;
		u->dest = dport;
		u->len = bpf_htons(total - olen);
		/* Pseudo-header, UDP header, the inner segment's sum. */
		sum += xdplb_sum32(src, 4) + xdplb_sum32(dst, 4) + 2 * (__u64)u->len + bpf_htons(IPPROTO_UDP) + sport + dport;
		check = xdplb_csum_fold(sum);
		u->check = check ? check : 0xffff;
	}
	if (bpf_xdp_adjust_head(ctx, gap))
		return XDP_ABORTED;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	if (l2->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(l2->ifindex, 0);
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
	if (t.prev_family) {
		/* A stateless VIP's packet, whose entry changed lately. */
		if (decap_owned(ctx, &t, end)) {
			st->delivered++;
		} else {
			bytes = end - data;
			rc = decap_chain(ctx, cfg, &t, l2len);
			if (rc >= 0) {
				st->chained++;
				st->bytes += bytes;
				return rc;
			}
			st->unowned++;
			/* Unchanged, but the verifier takes a call that may move
			 * the packet to have moved it: read its bounds again. */
			data = (void *)(long)ctx->data;
			end = (void *)(long)ctx->data_end;
		}
	}
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
