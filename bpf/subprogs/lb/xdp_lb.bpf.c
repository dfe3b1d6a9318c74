/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The L4 load balancer (a slot program, default slot 7). A TCP or UDP packet
 * to a VIP goes to a backend chosen by weighted Maglev over its 5-tuple and
 * remembered in the connection table, rewritten client->VIP to
 * NAT-source:port->backend; the backend's reply is rewritten back to
 * VIP->client; ICMP errors about these flows are translated the same way
 * (lb_icmp.h), and fragments follow their first one (lb_frag.h). Everything
 * else goes on unchanged (XDP_PASS to later slots), IPv6 extension headers
 * other than a Fragment header included.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdplb/slot.h>
#include "lib/parsing.h"
#include "lb_maps.h"
#include "lb_hash.h"
#include "lb_conntrack.h"
#include "lb_nat.h"
#include "lb_fib.h"
#include "lb_icmp.h"
#include "lb_frag.h"

/* A parsed TCP/UDP packet. */
struct lb_pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	struct ipv6hdr *ip6;
	struct tcphdr *th; /* one of these two */
	struct udphdr *uh;
	struct lb_flow flow; /* ports 0 in a later fragment */
	__u16 tot_len; /* IP packet length, for the FIB's MTU check */
	__u8 frag; /* LB_FRAG_* */
	__u32 bytes;
	__be32 frag_id; /* IPv4 id or IPv6 identification, in a fragment */
};

#define LB_FRAG_NONE 0
#define LB_FRAG_FIRST 1
#define LB_FRAG_LATER 2
static __always_inline struct lb_counters *lb_stats(void *map, __u32 id)
{
	return bpf_map_lookup_elem(map, &id);
}

/* One packet on a VIP's or backend's row (`c` NULL: none), either way. */
static __always_inline struct lb_counters *lb_count(struct lb_counters *c, int reply, __u32 bytes)
{
	if (c && reply) {
		c->reply_packets++;
		c->reply_bytes += bytes;
	} else if (c) {
		c->packets++;
		c->bytes += bytes;
	}
	return c;
}

/* 0: a TCP or UDP packet (or first fragment), LB_FRAG_LATER: a later
 * fragment of one (no ports), -1: anything else. */
static __always_inline int lb_parse(struct xdp_md *ctx, struct lb_pkt *p)
{
	struct xdplb_cursor c;
	int proto, l3;

	xdplb_cursor_init(&c, ctx);
	l3 = xdplb_parse_eth(&c, &p->eth);
	if (l3 == bpf_htons(ETH_P_IP)) {
		proto = xdplb_parse_ipv4(&c, &p->ip);
		if (proto < 0)
			return -1;
		p->flow.family = LB_FAMILY_V4;
		p->flow.src.w[0] = p->ip->saddr;
		p->flow.dst.w[0] = p->ip->daddr;
		p->tot_len = bpf_ntohs(p->ip->tot_len);
		if (xdplb_ipv4_is_fragment(p->ip)) {
			p->frag = (p->ip->frag_off & bpf_htons(0x1fff)) ? LB_FRAG_LATER : LB_FRAG_FIRST;
			p->frag_id = p->ip->id;
		}
	} else if (l3 == bpf_htons(ETH_P_IPV6)) {
		proto = xdplb_parse_ipv6(&c, &p->ip6);
		if (proto < 0)
			return -1;
		p->flow.family = LB_FAMILY_V6;
		__builtin_memcpy(&p->flow.src, &p->ip6->saddr, 16);
		__builtin_memcpy(&p->flow.dst, &p->ip6->daddr, 16);
		p->tot_len = bpf_ntohs(p->ip6->payload_len) + sizeof(struct ipv6hdr);
		if (proto == IPPROTO_FRAGMENT) {
			struct xdplb_frag6_hdr *fh = c.pos;

			if ((void *)(fh + 1) > c.end)
				return -1;
			p->frag = (fh->frag_off & bpf_htons(0xfff8)) ? LB_FRAG_LATER : LB_FRAG_FIRST;
			p->frag_id = fh->identification;
			proto = fh->nexthdr;
			c.pos = fh + 1;
		}
	} else {
		return -1;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return -1;
	p->flow.proto = proto;
	p->bytes = ctx->data_end - ctx->data;
	if (p->frag == LB_FRAG_LATER)
		return LB_FRAG_LATER;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = c.pos;

		if ((void *)(th + 1) > c.end)
			return -1;
		p->th = th;
		p->flow.sport = th->source;
		p->flow.dport = th->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = c.pos;

		if ((void *)(uh + 1) > c.end)
			return -1;
		p->uh = uh;
		p->flow.sport = uh->source;
		p->flow.dport = uh->dest;
	}
	return 0;
}

static __always_inline const struct lb_addr *lb_nat_addr(const struct lb_config *cfg, __u8 family)
{
	if (family == LB_FAMILY_V4)
		return cfg->flags & LB_HAS_NAT4 ? &cfg->nat4 : NULL;
	return cfg->flags & LB_HAS_NAT6 ? &cfg->nat6 : NULL;
}

/* The backend a tracked flow uses, or NULL when its entry no longer holds:
 * expired, a new TCP connection on a closed one's 4-tuple, its backend slot
 * reused, or its VIP gone (the VIP is found by id, from the backend, and
 * must still be the packet's destination). */
static __always_inline struct lb_backend *lb_backend_of(__u32 id, const struct lb_flow *f)
{
	struct lb_vip_key *key;
	struct lb_backend *be;

	be = bpf_map_lookup_elem(&lb_backends, &id);
	if (!be || !(be->flags & LB_BACKEND_IN_USE))
		return NULL;
	id = be->vip_id;
	key = bpf_map_lookup_elem(&lb_vip_ids, &id);
	if (!key || !lb_addr_eq(&key->addr, &f->dst) || key->port != f->dport || key->proto != f->proto ||
	    key->family != f->family)
		return NULL;
	return be;
}

static __always_inline struct lb_backend *lb_tracked(struct lb_conn *c, struct lb_pkt *p,
						     const struct lb_config *cfg, __u64 now)
{
	if (lb_conn_expired(c, p->flow.proto, cfg, now))
		return NULL;
	if (p->th && p->th->syn && !p->th->ack && c->state)
		return NULL;
	return lb_backend_of(c->backend, &p->flow);
}

static __always_inline __u32 lb_maglev_pick(const struct lb_vip *vip, const struct lb_flow *flow)
{
	__u32 vip_id = vip->id;
	void *table = bpf_map_lookup_elem(&lb_maglev, &vip_id);
	__u32 index, *id;

	if (!table || !vip->table_size)
		return LB_NO_BACKEND;
	index = lb_flow_hash(flow, LB_SEED_MAGLEV) % vip->table_size;
	id = bpf_map_lookup_elem(table, &index);
	return id ? *id : LB_NO_BACKEND;
}

/* Count a client packet on its VIP; NULL when the VIP's row is missing. */
static __always_inline struct lb_counters *lb_vip_count(__u32 vip_id, const struct lb_pkt *p)
{
	return lb_count(lb_stats(&lb_vip_stats, vip_id), 0, p->bytes);
}

/* client -> VIP  becomes  NAT source:port -> backend `be` (id `backend`). */
static __always_inline int lb_send(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg,
				   const struct lb_addr *nat, struct lb_counters *vc, const struct lb_backend *be,
				   __u32 backend, __be16 nport, int created, __u64 now)
{
	struct lb_counters *bc = lb_count(lb_stats(&lb_be_stats, backend), 0, p->bytes);
	struct lb_tuple from, to;

	if (bc)
		bc->new_conns += created;
	if (p->th && p->th->rst) {
		struct lb_nat_key key = { .backend = be->addr, .bport = be->port, .nport = nport,
					  .proto = p->flow.proto, .family = p->flow.family };
		lb_conn_forget(&p->flow, &key);
	}

	from = (struct lb_tuple){ .src = p->flow.src, .dst = p->flow.dst, .sport = p->flow.sport, .dport = p->flow.dport };
	to = (struct lb_tuple){ .src = *nat, .dst = be->addr, .sport = nport, .dport = be->port };
	if (p->frag)
		lb_frag_note(&p->flow, p->frag_id, &to.src, &to.dst, backend, be->vip_id, 0, cfg, now);
	lb_rewrite(p->ip, p->ip6, p->th, p->uh, &from, &to);
	return lb_xmit(ctx, p->eth, p->flow.family, p->flow.proto, &to.src, &to.dst, p->tot_len,
		       (be->flags & LB_BACKEND_MAC) ? be : NULL, bpf_map_lookup_elem(&lb_l2_cache, &backend), cfg, now,
		       vc);
}

/* A packet of a tracked flow (`c` NULL when the flow cache answered): the
 * fast path, no hash lookup but the connection table's, if that. */
static __always_inline int lb_forward(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg,
				      struct lb_conn *c, const struct lb_backend *be, __u32 backend, __be16 nport,
				      __u64 now)
{
	const struct lb_addr *nat = lb_nat_addr(cfg, p->flow.family);
	struct lb_counters *vc = lb_vip_count(be->vip_id, p);

	if (!vc)
		return XDP_ABORTED;
	if (!nat) {
		vc->no_backend++;
		return XDP_DROP;
	}
	if (c)
		lb_conn_touch(c, p->th, LB_FIN_CLIENT, now);
	return lb_send(ctx, p, cfg, nat, vc, be, backend, nport, 0, now);
}

/* A packet to `vip` of no tracked flow: a backend by Maglev, a NAT port,
 * and a new connection entry (over a stale one for the same 5-tuple). */
static __always_inline int lb_new_flow(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_vip *vip,
				       const struct lb_config *cfg, __u64 now)
{
	const struct lb_addr *nat = lb_nat_addr(cfg, p->flow.family);
	struct lb_counters *vc = lb_vip_count(vip->id, p);
	struct lb_conn fresh = { .last_seen = now };
	struct lb_backend *be;
	__u32 backend;
	__be16 nport;

	if (!vc)
		return XDP_ABORTED;
	if (!nat) {
		vc->no_backend++;
		return XDP_DROP;
	}
	if (p->th && !p->th->syn)
		vc->conn_misses++;
	backend = lb_maglev_pick(vip, &p->flow);
	be = bpf_map_lookup_elem(&lb_backends, &backend);
	if (!be || !(be->flags & LB_BACKEND_IN_USE) || (be->flags & LB_BACKEND_REMOVED)) {
		vc->no_backend++;
		return XDP_DROP;
	}
	nport = lb_nat_alloc(&p->flow, be, backend, vip->id, nat, cfg, now);
	if (!nport) {
		vc->nat_exhausted++;
		return XDP_DROP;
	}
	fresh.backend = backend;
	fresh.nat_port = nport;
	if (p->th && p->th->fin)
		fresh.state = LB_FIN_CLIENT;
	bpf_map_update_elem(&lb_conns, &p->flow, &fresh, BPF_ANY);
	vc->new_conns++;
	return lb_send(ctx, p, cfg, nat, vc, be, backend, nport, 1, now);
}

/* backend -> NAT source:port  becomes  VIP -> client. */
static __always_inline int lb_reply(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg)
{
	struct lb_nat_key key = { .backend = p->flow.src, .bport = p->flow.sport, .nport = p->flow.dport,
				  .proto = p->flow.proto, .family = p->flow.family };
	__u64 now = lb_now(cfg);
	struct lb_counters *vc;
	struct lb_tuple from, to;
	struct lb_conn *c;
	struct lb_nat *n;

	n = bpf_map_lookup_elem(&lb_nat, &key);
	if (!n)
		return XDP_PASS;
	vc = lb_count(lb_stats(&lb_vip_stats, n->vip), 1, p->bytes);
	lb_count(lb_stats(&lb_be_stats, n->backend), 1, p->bytes);
	from = (struct lb_tuple){ .src = p->flow.src, .dst = p->flow.dst, .sport = p->flow.sport, .dport = p->flow.dport };
	to = (struct lb_tuple){ .src = n->flow.dst, .dst = n->flow.src, .sport = n->flow.dport, .dport = n->flow.sport };
	/* The connection entry is touched once a tick, and on FIN: another
	 * reply in the same tick would write the same time into it, so it
	 * skips the second hash lookup. */
	if (n->touched != now || (p->th && p->th->fin)) {
		c = bpf_map_lookup_elem(&lb_conns, &n->flow);
		if (c && c->nat_port == key.nport)
			lb_conn_touch(c, p->th, LB_FIN_BACKEND, now);
		n->touched = now;
	}
	if (p->th && p->th->rst)
		lb_conn_forget(&n->flow, &key);
	if (p->frag)
		lb_frag_note(&p->flow, p->frag_id, &to.src, &to.dst, n->backend, n->vip, 1, cfg, now);
	lb_rewrite(p->ip, p->ip6, p->th, p->uh, &from, &to);
	return lb_xmit(ctx, p->eth, p->flow.family, p->flow.proto, &to.src, &to.dst, p->tot_len, NULL, &n->l2, cfg, now, vc);
}

/* A later fragment of a datagram whose first fragment was balanced: the
 * same addresses, the same way (lb_frag.h); otherwise passed on. */
static __always_inline int lb_fragment(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg)
{
	struct lb_frag_pair *s = lb_frag_key_of(&p->flow, p->frag_id);
	struct lb_backend *be = NULL;
	struct lb_counters *vc;
	__u64 now = lb_now(cfg);
	struct lb_frag *e;
	__u32 backend;

	if (!s)
		return XDP_PASS;
	e = bpf_map_lookup_elem(&lb_frags, &s->key);
	if (!e || e->expires <= now)
		return XDP_PASS;
	backend = e->backend;
	vc = lb_count(lb_stats(&lb_vip_stats, e->vip), e->reply, p->bytes);
	lb_count(lb_stats(&lb_be_stats, backend), e->reply, p->bytes);
	if (!e->reply)
		be = bpf_map_lookup_elem(&lb_backends, &backend);
	lb_rewrite_ip(p->ip, p->ip6, &e->src, &e->dst);
	return lb_xmit(ctx, p->eth, p->flow.family, p->flow.proto, &e->src, &e->dst, p->tot_len,
		       be && (be->flags & LB_BACKEND_MAC) ? be : NULL,
		       e->reply ? NULL : bpf_map_lookup_elem(&lb_l2_cache, &backend), cfg, now, vc);
}

/* An ICMP error about a balanced flow, translated (lb_icmp.h); XDP_PASS for
 * any other packet that is not TCP or UDP. */
static __always_inline int lb_icmp_error(struct xdp_md *ctx, const struct lb_config *cfg)
{
	struct lb_backend *be = NULL;
	const struct lb_addr *nat;
	struct lb_icmp_data *d;
	struct lb_counters *vc = NULL;
	struct lb_icmp m = {};
	struct lb_l2 *l2 = NULL;
	__u32 zero = 0;

	d = bpf_map_lookup_elem(&lb_icmp_scratch, &zero);
	if (!d || lb_icmp_parse(ctx, &m, d) < 0)
		return XDP_PASS;
	nat = lb_nat_addr(cfg, d->inner.family);
	if (!nat)
		return XDP_PASS;
	d->from.src = d->inner.src;
	d->from.dst = d->inner.dst;
	d->from.sport = d->inner.sport;
	d->from.dport = d->inner.dport;
	d->ofrom.src = d->osrc;
	d->ofrom.dst = d->odst;
	d->oto.src = d->osrc;
	if (lb_addr_eq(&d->odst, &d->inner.src)) {
		/* About a reply VIP -> client: to the flow's backend. */
		struct lb_conn *c = NULL;
		__u32 backend = 0;

		d->flow.src = d->inner.dst;
		d->flow.dst = d->inner.src;
		d->flow.sport = d->inner.dport;
		d->flow.dport = d->inner.sport;
		d->flow.proto = d->inner.proto;
		d->flow.family = d->inner.family;
		if (lb_vip_maybe(&d->flow))
			c = bpf_map_lookup_elem(&lb_conns, &d->flow);
		if (c) {
			backend = c->backend;
			be = lb_backend_of(backend, &d->flow);
		}
		if (c && be) {
			vc = lb_stats(&lb_vip_stats, be->vip_id);
			d->to.src = be->addr;
			d->to.dst = *nat;
			d->to.sport = be->port;
			d->to.dport = c->nat_port;
			d->oto.dst = be->addr;
			l2 = bpf_map_lookup_elem(&lb_l2_cache, &backend);
		}
	}
	/* Not that (a VIP may also be the NAT source, on other ports)... */
	if (!be) {
		/* ...about NAT:nport -> backend: to the client. */
		struct lb_nat *n;

		if (!lb_addr_eq(&d->odst, nat) || !lb_addr_eq(&d->inner.src, nat))
			return XDP_PASS;
		d->key.backend = d->inner.dst;
		d->key.bport = d->inner.dport;
		d->key.nport = d->inner.sport;
		d->key.proto = d->inner.proto;
		d->key.family = d->inner.family;
		n = bpf_map_lookup_elem(&lb_nat, &d->key);
		if (!n)
			return XDP_PASS;
		vc = lb_stats(&lb_vip_stats, n->vip);
		d->to.src = n->flow.src;
		d->to.dst = n->flow.dst;
		d->to.sport = n->flow.sport;
		d->to.dport = n->flow.dport;
		/* The backend's own error comes from the VIP; a router's from the router. */
		if (lb_addr_eq(&d->osrc, &d->inner.dst))
			d->oto.src = n->flow.dst;
		d->oto.dst = n->flow.src;
		l2 = &n->l2;
	}
	if (vc)
		vc->icmp_errors++;
	lb_icmp_rewrite(&m, d);
	return lb_xmit(ctx, m.eth, d->inner.family, m.ip ? IPPROTO_ICMP : IPPROTO_ICMPV6, &d->oto.src, &d->oto.dst,
		       m.tot_len, be && (be->flags & LB_BACKEND_MAC) ? be : NULL, l2, cfg, lb_now(cfg), vc);
}

static __always_inline int lb_process(struct xdp_md *ctx)
{
	struct lb_pkt p = {};
	const struct lb_addr *nat;
	struct lb_config *cfg;
	__u32 zero = 0;
	__u16 port;

	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg)
		return XDP_PASS;
	switch (lb_parse(ctx, &p)) {
	case 0:
		break;
	case LB_FRAG_LATER:
		return lb_fragment(ctx, &p, cfg);
	default:
		return lb_icmp_error(ctx, cfg);
	}
	if (lb_vip_maybe(&p.flow)) {
		struct lb_vip_key vk = { .addr = p.flow.dst, .port = p.flow.dport, .proto = p.flow.proto,
					 .family = p.flow.family };
		__u64 now = lb_now(cfg);
		struct lb_cached *e = lb_cache_slot(&p.flow);
		struct lb_backend *be;
		struct lb_conn *c;
		struct lb_vip *vip;

		if (!e)
			return XDP_ABORTED;
		if (lb_cache_hit(e, &p.flow, p.th, now)) {
			be = lb_backend_of(e->backend, &p.flow);
			if (be)
				return lb_forward(ctx, &p, cfg, NULL, be, e->backend, e->nat_port, now);
		}
		e->tick = 0; /* whatever the table says next, not this */
		c = bpf_map_lookup_elem(&lb_conns, &p.flow);
		if (c) {
			be = lb_tracked(c, &p, cfg, now);
			if (be) {
				if (lb_cache_usable(p.th))
					lb_cache_fill(e, &p.flow, c, now);
				return lb_forward(ctx, &p, cfg, c, be, c->backend, c->nat_port, now);
			}
		}
		vip = bpf_map_lookup_elem(&lb_vips, &vk);
		if (vip)
			return lb_new_flow(ctx, &p, vip, cfg, now);
	}
	nat = lb_nat_addr(cfg, p.flow.family);
	port = bpf_ntohs(p.flow.dport);
	if (nat && port >= cfg->port_min && port <= cfg->port_max &&
	    lb_addr_eq(nat, &p.flow.dst))
		return lb_reply(ctx, &p, cfg);
	return XDP_PASS;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	return xdplb_return(ctx, lb_process(ctx));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
