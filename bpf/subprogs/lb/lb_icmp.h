/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * ICMP errors about balanced flows, translated as their flows are, so that
 * path MTU discovery and "port unreachable" work through the NAT:
 *
 * - toward a VIP, quoting a reply VIP:vport -> client (a router on the
 *   client's side could not pass it): sent on to the flow's backend, quoting
 *   backend:bport -> NAT:nport, the packet the backend really sent;
 * - toward the NAT source, quoting NAT:nport -> backend (the backend or a
 *   router before it refused it): sent on to the client, quoting
 *   client:cport -> VIP:vport; from the VIP when the backend itself wrote it.
 *
 * Destination unreachable (fragmentation needed / Packet Too Big included)
 * and time exceeded, ICMP and ICMPv6, quoting TCP or UDP. Every checksum
 * moves with the bytes: the outer IPv4 header's, the ICMP one (ICMPv6's
 * over its pseudo-header too), the quoted IPv4 header's and the quoted TCP
 * or UDP checksum when it was quoted. Anything else is passed on untouched.
 * This header parses and rewrites; lb_icmp_error() in xdp_lb.bpf.c finds
 * the flow.
 */
#ifndef XDPLB_LB_ICMP_H
#define XDPLB_LB_ICMP_H

#include <linux/icmpv6.h>
#include "lib/icmp.h"
#include "lib/parsing.h"
#include "lib/csum.h"
#include "lb_maps.h"
#include "lb_nat.h"

/* Where the packet's parts are (pointers stay on the stack)... */
struct lb_icmp {
	struct ethhdr *eth;
	struct iphdr *ip; /* outer: one of these two */
	struct ipv6hdr *ip6;
	void *l3; /* the outer one, whichever it is (for the verifier: one pointer, never NULL) */
	__sum16 *check; /* the ICMP or ICMPv6 checksum */
	struct iphdr *iip; /* quoted: one of these two */
	struct ipv6hdr *iip6;
	__be16 *iports; /* quoted source and destination port */
	__sum16 *il4check; /* quoted TCP/UDP checksum; NULL when not quoted or 0 (UDP) */
	__u16 tot_len;
};

/* ...and what they say, with the keys and tuples the translation needs, in
 * a per-CPU scratch value: the program's stack is nearly all taken by the
 * TCP/UDP path, and ICMP errors are rare enough not to mind a lookup. */
struct lb_icmp_data {
	struct lb_flow inner; /* the quoted packet's 5-tuple, as it was sent */
	struct lb_flow flow; /* the client's flow it belongs to */
	struct lb_nat_key key;
	struct lb_addr osrc; /* outer addresses */
	struct lb_addr odst;
	struct lb_tuple from, to; /* quoted tuple, before and after */
	struct lb_tuple ofrom, oto; /* outer addresses, before and after */
	struct lb_vip_key vk; /* the flow's VIP, when no entry says where it went */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_icmp_data);
} lb_icmp_scratch SEC(".maps");

static __always_inline int lb_icmp_parse(struct xdp_md *ctx, struct lb_icmp *m, struct lb_icmp_data *d)
{
	struct xdplb_cursor c;
	__be16 *pt;
	int l3, proto;

	xdplb_cursor_init(&c, ctx);
	l3 = xdplb_parse_eth(&c, &m->eth);
	if (l3 == bpf_htons(ETH_P_IP)) {
		struct icmphdr *ih;
		struct iphdr *iip;

		if (xdplb_parse_ipv4(&c, &m->ip) != IPPROTO_ICMP || xdplb_ipv4_is_fragment(m->ip))
			return -1;
		ih = c.pos;
		if ((void *)(ih + 1) > c.end || (ih->type != ICMP_DEST_UNREACH && ih->type != ICMP_TIME_EXCEEDED))
			return -1;
		iip = (void *)(ih + 1);
		/* A quoted non-first fragment has no ports to translate. */
		if ((void *)(iip + 1) > c.end || iip->version != 4 || iip->ihl != 5 ||
		    (iip->frag_off & bpf_htons(0x1fff)))
			return -1;
		m->check = &ih->checksum;
		m->l3 = m->ip;
		m->iip = iip;
		d->inner.family = LB_FAMILY_V4;
		d->inner.src.w[0] = iip->saddr;
		d->inner.dst.w[0] = iip->daddr;
		d->osrc.w[0] = m->ip->saddr;
		d->odst.w[0] = m->ip->daddr;
		m->tot_len = bpf_ntohs(m->ip->tot_len);
		proto = iip->protocol;
		c.pos = iip + 1;
	} else if (l3 == bpf_htons(ETH_P_IPV6)) {
		struct icmp6hdr *ih;
		struct ipv6hdr *iip6;

		if (xdplb_parse_ipv6(&c, &m->ip6) != IPPROTO_ICMPV6)
			return -1;
		ih = c.pos;
		if ((void *)(ih + 1) > c.end ||
		    (ih->icmp6_type != ICMPV6_DEST_UNREACH && ih->icmp6_type != ICMPV6_PKT_TOOBIG &&
		     ih->icmp6_type != ICMPV6_TIME_EXCEED))
			return -1;
		iip6 = (void *)(ih + 1);
		if ((void *)(iip6 + 1) > c.end || iip6->version != 6)
			return -1;
		m->check = &ih->icmp6_cksum;
		m->l3 = m->ip6;
		m->iip6 = iip6;
		d->inner.family = LB_FAMILY_V6;
		__builtin_memcpy(&d->inner.src, &iip6->saddr, 16);
		__builtin_memcpy(&d->inner.dst, &iip6->daddr, 16);
		__builtin_memcpy(&d->osrc, &m->ip6->saddr, 16);
		__builtin_memcpy(&d->odst, &m->ip6->daddr, 16);
		m->tot_len = bpf_ntohs(m->ip6->payload_len) + sizeof(struct ipv6hdr);
		proto = iip6->nexthdr;
		c.pos = iip6 + 1;
	} else {
		return -1;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return -1;
	pt = c.pos;
	if ((void *)(pt + 2) > c.end)
		return -1;
	m->iports = pt;
	d->inner.sport = pt[0];
	d->inner.dport = pt[1];
	d->inner.proto = proto;
	m->il4check = (__sum16 *)((void *)pt + (proto == IPPROTO_TCP ? 16 : 6));
	if ((void *)(m->il4check + 1) > c.end || (proto == IPPROTO_UDP && !*m->il4check))
		m->il4check = NULL;
	return 0;
}

/* The quoted tuple d->from becomes d->to, the outer addresses d->ofrom
 * d->oto (ports unused). */
static __always_inline void lb_icmp_rewrite(struct lb_icmp *m, struct lb_icmp_data *d)
{
	/* The ICMP checksum covers the quoted bytes: their tuple, and the
	 * quoted checksums, whose own changes are added as they happen. */
	__u16 icmp = lb_csum_apply(*m->check, &d->from, &d->to);

	if (m->il4check) {
		__u16 old = *m->il4check, new = lb_csum_apply(old, &d->from, &d->to);

		if (d->inner.proto == IPPROTO_UDP && !new)
			new = 0xffff;
		*m->il4check = new;
		xdplb_csum_replace2((__sum16 *)&icmp, old, new);
	}
	m->iports[0] = d->to.sport;
	m->iports[1] = d->to.dport;
	if (m->iip) {
		/* The quoted IPv4 header's checksum change is summed too. */
		__u16 old = m->iip->check;

		lb_rewrite_ip(m->iip, NULL, &d->to.src, &d->to.dst);
		xdplb_csum_replace2((__sum16 *)&icmp, old, m->iip->check);
	} else {
		lb_rewrite_ip(NULL, m->iip6, &d->to.src, &d->to.dst);
	}
	/* ICMPv6 also sums the outer addresses (its pseudo-header). */
	if (m->ip6)
		icmp = lb_csum_apply(icmp, &d->ofrom, &d->oto);
	lb_rewrite_ip(m->ip, m->ip6, &d->oto.src, &d->oto.dst);
	*m->check = icmp;
}

#endif
