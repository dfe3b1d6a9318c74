/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Direct server return: the client's IP packet reaches the backend
 * untouched, and the backend answers the client itself.
 *
 * - dsr-l2: only the destination MAC changes (the backend's, from the FIB
 *   and neighbour tables or its configured `mac`);
 * - ipip: an outer IPv4 or IPv6 header to the backend (IPv4 in IPv4, IPv6
 *   in IPv6, IPv4 in IPv6 for an IPv4 VIP with IPv6 backends);
 * - gue: an outer IP header, a UDP header to the VIP's GUE port, then the
 *   inner packet (GUE variant 1: the inner IP version is the header); for
 *   a stateless VIP whose entry names a previous backend, a GUE variant-0
 *   header first whose private data is that backend's address and the
 *   change's generation (the layout: docs/ARCHITECTURE.md, "Stateless
 *   balancing").
 *
 * The outer header is planned (struct lb_encap) from the inner one before
 * anything moves: its route and MTU decide whether the packet is sent, or
 * answered with "fragmentation needed" / Packet Too Big advertising the MTU
 * less the overhead. Then bpf_xdp_adjust_head() opens the gap, the L2
 * header moves to the new start with the outer EtherType, and the outer
 * headers are written into the gap. `gue_len` is the GUE header after the
 * UDP header: 0 in variant 1; 4 + 8 or 4 + 20 with a previous backend
 * (variant 0, Hlen 2 for an IPv4 address, 5 for an IPv6 one).
 *
 * Outer fields: DSCP/ECN and TTL/hop limit copied from the inner header;
 * IPv4 with DF, id 0 (RFC 6864: an atomic datagram) and its checksum;
 * IPv6 with the flow's hash as flow label; the UDP source port from the
 * flow's hash (49152-65535), so that ECMP and the backend's RSS spread
 * flows, and each flow stays on one path. UDP checksum as Linux's FOU
 * sends it: 0 over IPv4; over IPv6, where 0 is not allowed, computed with
 * local checksum offload (Documentation/networking/checksum-offloads.rst):
 * when the inner packet carries a valid transport checksum, its bytes from
 * the transport header on sum to the complement of its pseudo-header's
 * sum, so the whole inner packet sums to what its headers alone say and
 * not one payload byte is read. A later fragment, whose checksum covers
 * the whole datagram, or a UDP datagram without one, is summed byte by byte.
 */
#ifndef XDPLB_LB_ENCAP_H
#define XDPLB_LB_ENCAP_H

#include <linux/in.h>
#include <linux/ipv6.h>
#include "lib/csum.h"
#include "lib/parsing.h"
#include "lb_maps.h"
#include "lb_hash.h"
#include "lb_fib.h"

#define LB_GUE_SPORT_BASE 0xc000 /* RFC 6335 dynamic ports: 49152-65535 */
/* GUE variant 0's private data: the previous backend and the generation. */
#define LB_GUE_PRIV4 8
#define LB_GUE_PRIV6 20
#define LB_IP_DF 0x4000

/* Summing a span of the frame with bpf_loop(): its callback is verified
 * once, where an inline loop over a page is verified step by step. */
struct lb_sum_ctx {
	struct xdp_md *ctx;
	__u64 sum;
	__u32 off;
	__u32 left;
};

static long lb_sum_step(__u64 i, struct lb_sum_ctx *s)
{
	void *data = (void *)(long)s->ctx->data, *end = (void *)(long)s->ctx->data_end;
	__u32 off = s->off;
	void *p;

	if (off > XDPLB_CSUM_TAIL_MAX)
		return 1;
	p = data + off;
	if (s->left >= 8 && p + 8 <= end) {
		__u64 v = *(__u64 *)p;

		s->sum += (v & 0xffffffff) + (v >> 32);
		s->off += 8;
		s->left -= 8;
		return 0;
	}
	if (s->left >= 2 && p + 2 <= end) {
		s->sum += *(__u16 *)p;
		s->off += 2;
		s->left -= 2;
		return 0;
	}
	if (s->left && p + 1 <= end)
		s->sum += *(__u8 *)p;
	return 1;
}

/* The one's complement sum of `len` bytes of the frame from `off` on,
 * folded to 16 bits: for packets local checksum offload cannot sum. */
__noinline int lb_sum_span(struct xdp_md *ctx, __u32 off, __u32 len)
{
	struct lb_sum_ctx s = { .ctx = ctx, .off = off, .left = len };
	__u64 sum;

	bpf_loop(XDPLB_CSUM_TAIL_MAX / 2, lb_sum_step, &s, 0);
	sum = s.sum;
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* What the outer header will say. */
struct lb_encap {
	struct lb_addr src;
	__u64 inner_sum; /* the inner packet's one's complement sum (UDP over IPv6) */
	__u32 hash; /* the flow's (lb_flow_key_hash): GUE source port, flow label, varied source */
	__u16 inner_len;
	__u16 hlen; /* outer IP [+ UDP + GUE header]: what the frame grows by */
	__be16 gue_port;
	__u8 family; /* outer */
	__u8 proto; /* IPPROTO_IPIP, IPPROTO_IPV6 or IPPROTO_UDP */
	__u8 tos; /* inner DSCP and ECN */
	__u8 ttl;
	__u8 gue_len; /* GUE header after UDP: 0 in variant 1 */
	struct lb_addr prev; /* variant 0: the previous backend */
	__be32 gen; /* variant 0: the change's generation */
	__u8 prev_family;
	__u8 inner_proto; /* IPPROTO_IPIP or IPPROTO_IPV6 */
};

/* Planned here, not on the stack (512 bytes for a chain of calls). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_encap);
} lb_encap_scratch SEC(".maps");

/* The outer header toward `be` for the inner packet at `l3` (of `family`).
 * The inner header is one pointer and a family, never two pointers one of
 * which is NULL: clang may test the one and use the other, which the
 * verifier cannot follow. */
static __always_inline void lb_encap_plan(struct lb_encap *e, const struct lb_vip_fwd *fwd, const struct lb_backend *be,
					  const void *l3, __u8 family, __u16 inner_len, __u32 hash,
					  const struct lb_backend *prev, __u32 gen)
{
	e->hash = hash; /* the flow key hash, already finalized */
	e->inner_len = inner_len;
	e->family = be->family;
	if (family == LB_FAMILY_V4) {
		const struct iphdr *ip = l3;

		e->tos = ip->tos;
		e->ttl = ip->ttl;
		e->proto = IPPROTO_IPIP;
		e->inner_proto = IPPROTO_IPIP;
	} else {
		const struct ipv6hdr *ip6 = l3;

		e->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		e->ttl = ip6->hop_limit;
		e->proto = IPPROTO_IPV6;
		e->inner_proto = IPPROTO_IPV6;
	}
	__builtin_memset(&e->src, 0, sizeof(e->src));
	if (be->family == LB_FAMILY_V4) {
		e->src.w[0] = (fwd->src4 & ~fwd->vary4) | (e->hash & fwd->vary4);
		e->hlen = sizeof(struct iphdr);
	} else {
		e->src = fwd->src6;
		e->src.w[3] = (fwd->src6.w[3] & ~fwd->vary6) | (e->hash & fwd->vary6);
		e->hlen = sizeof(struct ipv6hdr);
	}
	e->gue_len = 0;
	e->gue_port = fwd->gue_port;
	if (fwd->mode == LB_FWD_GUE) {
		if (prev) {
			e->prev = prev->addr;
			e->prev_family = prev->family;
			e->gen = bpf_htonl(gen);
			e->gue_len = 4 + (prev->family == LB_FAMILY_V4 ? LB_GUE_PRIV4 : LB_GUE_PRIV6);
		}
		e->proto = IPPROTO_UDP;
		e->hlen += sizeof(struct udphdr) + e->gue_len;
	}
	e->inner_sum = 0;
}

/* The inner packet's sum for the outer UDP checksum (see the top): from
 * its headers when its transport checksum is there to be trusted, else
 * read whole. `off` is where it starts in the frame. */
static __always_inline __u64 lb_inner_sum(struct xdp_md *ctx, const void *l3, __u8 family, __u32 off, __u16 len,
					  void *end)
{
	const struct ipv6hdr *ip6 = l3;
	__u8 proto;
	void *l4;

	if (family == LB_FAMILY_V4) {
		__u64 pseudo;
		const struct iphdr *ip = l3;
		__u32 hlen = ip->ihl * 4;

		/* The header's own words sum to zero: its checksum was checked. */
		proto = ip->protocol;
		l4 = (void *)ip + hlen;
		if (xdplb_ipv4_is_fragment(ip) || (void *)l4 + sizeof(struct udphdr) > end)
			goto whole;
		if (proto == IPPROTO_ICMP)
			return 0; /* no pseudo-header: the message sums to zero */
		if (proto != IPPROTO_TCP && (proto != IPPROTO_UDP || !((struct udphdr *)l4)->check))
			goto whole;
		pseudo = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
			 bpf_htons(proto) + bpf_htons(len - hlen);
		return xdplb_csum_fold(pseudo);
	}
	proto = ip6->nexthdr;
	l4 = (void *)(ip6 + 1);
	if ((void *)l4 + sizeof(struct udphdr) > end)
		goto whole;
	if (proto != IPPROTO_TCP && proto != IPPROTO_ICMPV6 && (proto != IPPROTO_UDP || !((struct udphdr *)l4)->check))
		goto whole;
	/* The fixed header's words plus the complement of the pseudo-header's:
	 * the addresses and the payload length are in both and cancel, which
	 * leaves the first word (version, class, flow label), next header and
	 * hop limit, less the next header as the pseudo-header holds it. */
	return xdplb_sum32(ip6, 1) + *(const __u16 *)((const void *)ip6 + 6) + (__u16)~bpf_htons(proto);
whole:
	return lb_sum_span(ctx, off, len);
}

/* Open the gap and write the outer headers; the new L2 header, or NULL
 * when the frame could not grow. `l2len` is 14, 18 or 22. */
static __always_inline struct ethhdr *lb_encap_push(struct xdp_md *ctx, const struct lb_encap *e, const struct lb_addr *dst,
						    __u32 l2len)
{
	void *data, *end, *from, *outer;
	__u64 priv;
	/* 64 bits, checked and then used in the same register (barriers on
	 * both sides): clang would otherwise compare a zero-extended copy, or
	 * read them again, and the verifier would see the use unchecked. */
	__u64 hlen = e->hlen, l2 = l2len;

	asm volatile("" : "+r"(l2));
	asm volatile("" : "+r"(hlen));
	if (l2 > XDPLB_L2_MAX || l2 < sizeof(struct ethhdr) || hlen > 80)
		return NULL;
	asm volatile("" : "+r"(l2));
	asm volatile("" : "+r"(hlen));
	if (bpf_xdp_adjust_head(ctx, -(int)hlen))
		return NULL;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	from = data + hlen;
	if (data + XDPLB_L2_MAX > end || from + XDPLB_L2_MAX > end)
		return NULL;
	xdplb_l2_move(data, from, l2, bpf_htons(e->family == LB_FAMILY_V4 ? ETH_P_IP : ETH_P_IPV6));
	outer = data + l2;
	if (e->family == LB_FAMILY_V4) {
		struct iphdr *o = outer;

		if ((void *)(o + 1) > end)
			return NULL;
		/* Whole words, summed as they are written: version, IHL and
		 * TOS with the length; id 0 with DF; TTL and protocol with a
		 * zero checksum; the addresses. */
		__u32 w0 = bpf_htonl(0x45000000 | (__u32)e->tos << 16 | (__u16)(e->inner_len + e->hlen));
		__u32 w1 = bpf_htonl(LB_IP_DF);
		__u32 w2 = bpf_htonl((__u32)e->ttl << 24 | (__u32)e->proto << 16);

		*(__u32 *)o = w0;
		*((__u32 *)o + 1) = w1;
		*((__u32 *)o + 2) = w2;
		o->saddr = e->src.w[0];
		o->daddr = dst->w[0];
		o->check = xdplb_csum_fold((__u64)w0 + w1 + w2 + e->src.w[0] + dst->w[0]);
		outer = o + 1;
	} else {
		struct ipv6hdr *o6 = outer;

		if ((void *)(o6 + 1) > end)
			return NULL;
		*(__be32 *)o6 = bpf_htonl(0x60000000 | ((__u32)e->tos << 20) | (e->hash & 0xfffff));
		/* Payload length, next header, hop limit: one word. */
		*((__be32 *)o6 + 1) = bpf_htonl((__u32)(__u16)(e->inner_len + e->hlen - sizeof(*o6)) << 16 |
						(__u32)e->proto << 8 | e->ttl);
		__builtin_memcpy(&o6->saddr, &e->src, 16);
		__builtin_memcpy(&o6->daddr, dst, 16);
		outer = o6 + 1;
	}
	if (e->proto == IPPROTO_UDP) {
		struct udphdr *u = outer;
		__u16 ulen = sizeof(*u) + e->gue_len + e->inner_len;

		if ((void *)(u + 1) > end)
			return NULL;
		u->source = bpf_htons(LB_GUE_SPORT_BASE | (e->hash >> 18));
		u->dest = e->gue_port;
		*((__u32 *)u + 1) = bpf_htonl((__u32)ulen << 16); /* length, checksum 0 */
		priv = 0;
		if (e->gue_len) {
			/* Variant 0: Hlen words of private data, the inner
			 * packet's protocol, no flags; the previous backend, the
			 * generation. */
			__u32 *g = (__u32 *)(u + 1);

			if ((void *)(g + 6) > end)
				return NULL;
			g[0] = bpf_htonl((e->prev_family == LB_FAMILY_V4 ? LB_GUE_PRIV4 / 4 : LB_GUE_PRIV6 / 4) << 24 |
					 (__u32)e->inner_proto << 16);
			g[1] = e->prev.w[0];
			priv = (__u64)g[0] + g[1];
			if (e->prev_family == LB_FAMILY_V4) {
				g[2] = e->gen;
				priv += g[2];
			} else {
				g[2] = e->prev.w[1];
				g[3] = e->prev.w[2];
				g[4] = e->prev.w[3];
				g[5] = e->gen;
				priv += (__u64)g[2] + g[3] + g[4] + g[5];
			}
		}
		if (e->family == LB_FAMILY_V6) {
			/* Pseudo-header (addresses, length, next header), the
			 * UDP header, the GUE header, the inner packet's sum. */
			__u64 sum = xdplb_sum32(&e->src, 4) + xdplb_sum32(dst, 4) + 2 * (__u64)u->len +
				    bpf_htons(IPPROTO_UDP) + u->source + u->dest + priv + e->inner_sum;
			__u16 check = xdplb_csum_fold(sum);

			u->check = check ? check : 0xffff;
		}
	}
	return data;
}

/* Send the inner packet at `l3` (of `family`, `len` bytes long, `l2len`
 * bytes of L2 before it) to backend `be` the VIP's way; with `prev` (GUE
 * only), naming it and generation `gen` in the GUE header. A too-big
 * packet is answered by lb_too_big() (in xdp_lb.bpf.c). */
int lb_too_big(struct xdp_md *ctx, __u32 mtu);

static __always_inline int lb_dsr_out(struct xdp_md *ctx, struct ethhdr *eth, void *l3, __u8 family,
				      __u32 l2len, __u16 len, __u8 proto, const struct lb_addr *client, __u32 hash,
				      const struct lb_vip_fwd *fwd, struct lb_counters *vc, const struct lb_backend *be,
				      __u32 backend, const struct lb_backend *prev, __u32 gen, const struct lb_config *cfg,
				      __u64 now)
{
	int mac = be->flags & LB_BACKEND_MAC;
	struct lb_l2 *l2 = bpf_map_lookup_elem(&lb_l2_cache, &backend);
	struct lb_encap *e;
	__u32 zero = 0;
	__u16 mtu = 0;
	int rc;

	if (!l2 || !vc)
		return XDP_ABORTED;
	if (fwd->mode == LB_FWD_DSR_L2) {
		rc = lb_xmit(ctx, eth, be->family, proto, client, &be->addr, len, be, l2, cfg, now, vc);
		/* Passed up unresolved, the kernel would route it to the VIP. */
		return rc == XDP_PASS ? XDP_DROP : rc;
	}
	e = bpf_map_lookup_elem(&lb_encap_scratch, &zero);
	if (!e)
		return XDP_ABORTED;
	lb_encap_plan(e, fwd, be, l3, family, len, hash, prev, gen);
	rc = lb_route(ctx, e->family, e->proto, &e->src, &be->addr, len + e->hlen, e->hlen, mac, l2, cfg, now, &mtu);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		rc = lb_too_big(ctx, mtu > e->hlen ? mtu - e->hlen : 0);
		if (rc == XDP_TX)
			vc->too_big++;
		return rc;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		vc->fib_failures++;
		return XDP_DROP;
	}
	if (e->family == LB_FAMILY_V6 && e->proto == IPPROTO_UDP)
		e->inner_sum = lb_inner_sum(ctx, l3, family, l2len, len, (void *)(long)ctx->data_end);
	eth = lb_encap_push(ctx, e, &be->addr, l2len);
	if (!eth)
		return XDP_ABORTED;
	vc->encapsulated++;
	if (mac)
		return lb_l2_to_mac(eth, be);
	/* Unresolved: the kernel forwards the encapsulated packet and
	 * resolves the neighbour on the way. */
	return lb_l2_result(ctx, eth, rc, l2, vc);
}

/* lb_dsr_out() for the rare paths (new flows, ICMP errors, later
 * fragments), as a function of its own: verified once for all of them
 * rather than inline in each. The packet is described by scalars (a
 * global function takes no packet pointer): `shape` is the L2 length, the
 * family << 8 and the L4 protocol << 16; the client is the packet's source. */
#define LB_SHAPE(l2len, family, proto) ((__u32)(l2len) | (__u32)(family) << 8 | (__u32)(proto) << 16)

__noinline int lb_dsr_send_g(struct xdp_md *ctx, __u32 backend, __u32 hash, __u32 shape, __u32 len)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 l2len = shape & 0xff, zero = 0, vip_id;
	__u8 family = shape >> 8, proto = shape >> 16;
	struct lb_counters *vc;
	struct lb_backend *be;
	struct lb_vip_fwd *fwd;
	struct lb_config *cfg;
	struct lb_addr client = {};
	void *l3;

	if (l2len > XDPLB_L2_MAX || data + sizeof(struct ethhdr) > end)
		return XDP_ABORTED;
	l3 = data + l2len;
	if (l3 + sizeof(struct ipv6hdr) > end && (family != LB_FAMILY_V4 || l3 + sizeof(struct iphdr) > end))
		return XDP_ABORTED;
	if (family == LB_FAMILY_V4)
		client.w[0] = ((struct iphdr *)l3)->saddr;
	else if (l3 + sizeof(struct ipv6hdr) <= end)
		__builtin_memcpy(&client, &((struct ipv6hdr *)l3)->saddr, 16);
	else
		return XDP_ABORTED;
	be = bpf_map_lookup_elem(&lb_backends, &backend);
	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!be || !cfg)
		return XDP_ABORTED;
	vip_id = be->vip_id;
	fwd = bpf_map_lookup_elem(&lb_vip_fwd, &vip_id);
	vc = bpf_map_lookup_elem(&lb_vip_stats, &vip_id);
	if (!fwd)
		return XDP_ABORTED;
	return lb_dsr_out(ctx, data, l3, family, l2len, len, proto, &client, hash, fwd, vc, be, backend, NULL, 0, cfg,
			  lb_now(cfg));
}

#endif
