/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The L4 load balancer (a slot program, default slot 7). A TCP or UDP packet
 * to a VIP goes to a backend chosen by weighted Maglev over its 5-tuple and
 * remembered in the connection table; then, by the VIP's forwarding mode
 * (lb_vip_fwd), either NAT (client->VIP rewritten to NAT-source:port->
 * backend, the backend's reply rewritten back to VIP->client) or direct
 * server return (lb_encap.h: the packet reaches the backend unchanged, by
 * MAC or in an outer header, and the backend answers the client itself).
 * ICMP errors about these flows are translated or forwarded (lb_icmp.h),
 * and fragments follow their first one (lb_frag.h). Everything else goes on
 * unchanged (XDP_PASS to later slots), IPv6 extension headers other than a
 * Fragment header included.
 *
 * A stateless VIP (lb_stateless.h) keeps no flows: each of its packets
 * takes its table's entry, and reaches the same send path as a tracked
 * DSR flow's, with the entry's previous backend if it names one.
 *
 * The established path is inline. New flows, ICMP errors, later fragments
 * and too-big answers are functions of their own (global: the verifier
 * checks each once, not once per path that reaches it; inline, the program
 * outgrew its million-instruction budget). They re-parse the packet and
 * either finish it or hand it back (lb_handoff) to be sent by the same
 * code as an established flow's. The program and every chain of calls in
 * it share 512 bytes of stack, so larger scratch values live in per-CPU
 * arrays.
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
#include "lib/ptb.h"
#include "lb_maps.h"
#include "lb_hash.h"
#include "lb_conntrack.h"
#include "lb_nat.h"
#include "lb_fib.h"
#include "lb_encap.h"
#include "lb_stateless.h"
#include "lb_icmp.h"
#include "lb_frag.h"

/* A parsed TCP/UDP packet. */
struct lb_pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	struct ipv6hdr *ip6;
	void *l3; /* ip or ip6, whichever is there: clang may test one of two
		   * pointers and use the other, which the verifier cannot follow */
	struct tcphdr *th; /* one of these two */
	struct udphdr *uh;
	struct lb_flow flow; /* ports 0 in a later fragment */
	__u16 tot_len; /* IP packet length, for the FIB's MTU check */
	__u8 frag; /* LB_FRAG_* */
	__u8 l2len; /* Ethernet and VLAN tags */
	__u32 bytes;
	__be32 frag_id; /* IPv4 id or IPv6 identification, in a fragment */
	__u32 hash; /* lb_flow_key_hash(flow): cache slot, encapsulation entropy */
};

#define LB_FRAG_NONE 0
#define LB_FRAG_FIRST 1
#define LB_FRAG_LATER 2

/* lb_slow(): what the inline path already knows. */
#define LB_SLOW_SYN 1 /* a SYN: the connection table was not read */
#define LB_SLOW_ADOPT 2 /* the table holds the flow, for another CPU */

/* What a function of its own hands back, besides a final XDP verdict. */
#define LB_GO_TRACKED 16 /* send as a tracked flow's packet: lb_handoff's backend and NAT port */
#define LB_GO_DSR 17 /* send the DSR way: lb_handoff's backend, hash, shape and length */
#define LB_GO_REPLY 18 /* not for a VIP after all: maybe a reply to the NAT source */
#define LB_GO_STATELESS 19 /* a stateless VIP's packet: lb_handoff's backend is the VIP's id, slot its entry */

struct lb_handoff {
	struct lb_slot slot;
	__u32 backend;
	__u32 hash;
	__u32 shape; /* LB_SHAPE() */
	__u16 len;
	__be16 nat_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_handoff);
} lb_handoff SEC(".maps");

/* lb_slow()'s keys and new entry, here rather than on the stack. */
struct lb_slow_work {
	struct lb_vip_key vk;
	struct lb_nat_key nk;
	struct lb_conn fresh;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_slow_work);
} lb_slow_scratch SEC(".maps");

static __always_inline struct lb_handoff *lb_handoff_slot(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lb_handoff, &zero);
}

static __always_inline struct lb_counters *lb_stats(void *map, __u32 id)
{
	return bpf_map_lookup_elem(map, &id);
}

static __always_inline struct lb_vip_fwd *lb_fwd(__u32 vip_id)
{
	return bpf_map_lookup_elem(&lb_vip_fwd, &vip_id);
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
	__u64 l2len;
	int proto, l3;

	xdplb_cursor_init(&c, ctx);
	l3 = xdplb_parse_eth(&c, &p->eth);
	if (l3 < 0)
		return -1;
	/* A scalar first: stored as one byte, clang would spill the pointer. */
	l2len = c.pos - (void *)p->eth;
	asm volatile("" : "+r"(l2len));
	p->l2len = l2len;
	if (l3 == bpf_htons(ETH_P_IP)) {
		proto = xdplb_parse_ipv4(&c, &p->ip);
		if (proto < 0)
			return -1;
		p->l3 = p->ip;
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
		p->l3 = p->ip6;
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

/* An IPv4 header whose checksum is already wrong: not forwarded (a rewrite
 * would keep it wrong, an outer header would hide it). */
static __always_inline int lb_ip_bad(const struct iphdr *ip, void *end)
{
	return ip && !xdplb_ipv4_csum_ok(ip, ip->ihl, end);
}

static __always_inline const struct lb_addr *lb_nat_addr(const struct lb_config *cfg, __u8 family)
{
	if (family == LB_FAMILY_V4)
		return cfg->flags & LB_HAS_NAT4 ? &cfg->nat4 : NULL;
	return cfg->flags & LB_HAS_NAT6 ? &cfg->nat6 : NULL;
}

/* The backend a tracked flow uses, or NULL when its entry no longer holds:
 * its backend slot reused, or its VIP gone (the VIP is found by id, from
 * the backend, and must still be the packet's destination). */
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

/* lb_backend_of() for a backend whose VIP is known to be `vip_id` (the
 * flow cache says so): both looked up at once, the backend's VIP compared. */
static __always_inline struct lb_backend *lb_backend_at(__u32 id, __u32 vip_id, const struct lb_flow *f)
{
	struct lb_backend *be = bpf_map_lookup_elem(&lb_backends, &id);
	struct lb_vip_key *key = bpf_map_lookup_elem(&lb_vip_ids, &vip_id);

	if (!be || !key || !(be->flags & LB_BACKEND_IN_USE) || be->vip_id != vip_id)
		return NULL;
	if (!lb_addr_eq(&key->addr, &f->dst) || key->port != f->dport || key->proto != f->proto ||
	    key->family != f->family)
		return NULL;
	return be;
}

/* ...and expired, or a new TCP connection on a closed one's 4-tuple. */
static __always_inline struct lb_backend *lb_tracked(struct lb_conn *c, const struct lb_flow *flow, __u8 tcp_flags,
						     const struct lb_config *cfg, __u64 now)
{
	if (lb_conn_expired(c, flow->proto, cfg, now))
		return NULL;
	if ((tcp_flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN && (c->fin_client || c->fin_backend))
		return NULL;
	return lb_backend_of(c->backend, flow);
}

/* A stateless VIP's packets find their entry as lb_stateless.h says; the
 * others by the full flow hash modulo the VIP's table size. */
static __always_inline __u32 lb_maglev_pick(const struct lb_vip *vip, const struct lb_flow *flow, int stateless)
{
	__u32 vip_id = vip->id;
	void *table = bpf_map_lookup_elem(&lb_maglev, &vip_id);
	struct lb_slot *s;
	__u32 index;

	if (stateless)
		s = lb_slot_at(vip_id, lb_flow_key_hash(flow));
	else if (!table || !vip->table_size)
		return LB_NO_BACKEND;
	else {
		index = lb_flow_hash(flow, LB_SEED_MAGLEV) % vip->table_size;
		s = bpf_map_lookup_elem(table, &index);
	}
	return s && s->cur != LB_SLOT_NONE ? s->cur : LB_NO_BACKEND;
}

/* A backend that may take new flows, NULL when none (drained, removed). */
static __always_inline struct lb_backend *lb_pick(const struct lb_vip *vip, const struct lb_flow *flow, __u32 *backend,
						  int stateless)
{
	struct lb_backend *be;

	*backend = lb_maglev_pick(vip, flow, stateless);
	be = bpf_map_lookup_elem(&lb_backends, backend);
	if (!be || !(be->flags & LB_BACKEND_IN_USE) || (be->flags & LB_BACKEND_REMOVED))
		return NULL;
	return be;
}

/* The packet, already counted on its VIP's row, ends here: `reason` counted, dropped. */
static __always_inline int lb_count_drop(struct lb_counters *vc, __u64 *reason)
{
	(*reason)++;
	return XDP_DROP;
}

/* Count a client packet on its VIP; NULL when the VIP's row is missing. */
static __always_inline struct lb_counters *lb_vip_count(__u32 vip_id, const struct lb_pkt *p)
{
	return lb_count(lb_stats(&lb_vip_stats, vip_id), 0, p->bytes);
}

/* client -> VIP  becomes  NAT source:port -> backend `be` (id `backend`). */
static __always_inline int lb_send(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg,
				   const struct lb_addr *nat, struct lb_counters *vc, const struct lb_backend *be,
				   __u32 backend, __be16 nport, __u64 now)
{
	struct lb_tuples *t = lb_tuples();

	if (!t)
		return XDP_ABORTED;
	lb_count(lb_stats(&lb_be_stats, backend), 0, p->bytes);
	if (p->th && p->th->rst) {
		t->key = (struct lb_nat_key){ .backend = be->addr, .bport = be->port, .nport = nport,
					      .proto = p->flow.proto, .family = p->flow.family };
		lb_conn_forget(&p->flow, &t->key);
	}
	t->from = (struct lb_tuple){ .src = p->flow.src, .dst = p->flow.dst, .sport = p->flow.sport, .dport = p->flow.dport };
	t->to = (struct lb_tuple){ .src = *nat, .dst = be->addr, .sport = nport, .dport = be->port };
	if (p->frag)
		lb_frag_note(&p->flow, p->frag_id, &t->to.src, &t->to.dst, backend, be->vip_id, 0, p->hash, cfg, now);
	lb_rewrite(p->ip, p->ip6, p->th, p->uh, &t->from, &t->to);
	return lb_xmit(ctx, p->eth, p->flow.family, p->flow.proto, &t->to.src, &t->to.dst, p->tot_len,
		       be, bpf_map_lookup_elem(&lb_l2_cache, &backend), cfg, now, vc);
}

/* A NAT packet of a tracked flow (`c` NULL when the flow cache answered). */
static __always_inline int lb_forward(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg,
				      struct lb_conn *c, const struct lb_backend *be, __u32 backend, __be16 nport,
				      __u64 now)
{
	const struct lb_addr *nat = lb_nat_addr(cfg, p->flow.family);
	struct lb_counters *vc = lb_vip_count(be->vip_id, p);

	if (!vc)
		return XDP_ABORTED;
	if (lb_ip_bad(p->ip, (void *)(long)ctx->data_end)) {
		vc->bad_checksum++;
		return XDP_DROP;
	}
	if (!nat) {
		vc->no_backend++;
		return XDP_DROP;
	}
	if (c)
		lb_conn_touch(c, lb_tcp_flags(p->th), 0, now);
	return lb_send(ctx, p, cfg, nat, vc, be, backend, nport, now);
}

/* A DSR packet (counted on its VIP's row `vc`) to backend `be`, naming
 * backend `prev` (for a stateless VIP's entry that has one, else NULL);
 * `syn` 1 for a stateless VIP's new connection, counted on the backend's
 * row with the packet (one lookup of the row). */
static __always_inline int lb_dsr_send(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg,
				       const struct lb_vip_fwd *fwd, struct lb_counters *vc, const struct lb_backend *be,
				       __u32 backend, const struct lb_backend *prev, __u32 gen, __u32 syn, __u64 now)
{
	struct lb_counters *bc = lb_count(lb_stats(&lb_be_stats, backend), 0, p->bytes);

	if (bc)
		bc->new_conns += syn;
	if (p->frag)
		lb_frag_note(&p->flow, p->frag_id, &p->flow.src, &p->flow.dst, backend, be->vip_id, 0, p->hash, cfg,
			     now);
	return lb_dsr_out(ctx, p->eth, p->l3, p->flow.family, p->l2len, p->tot_len, p->flow.proto, &p->flow.src,
			  p->hash, fwd, vc, be, backend, prev, gen, cfg, now);
}

/* backend -> NAT source:port  becomes  VIP -> client. */
static __always_inline int lb_reply(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg)
{
	struct lb_tuples *t = lb_tuples();
	__u64 now = lb_now(cfg);
	struct lb_counters *vc;
	struct lb_conn *c;
	struct lb_nat *n;

	if (!t)
		return XDP_ABORTED;
	t->key = (struct lb_nat_key){ .backend = p->flow.src, .bport = p->flow.sport, .nport = p->flow.dport,
				      .proto = p->flow.proto, .family = p->flow.family };
	n = bpf_map_lookup_elem(&lb_nat, &t->key);
	if (!n)
		return XDP_PASS;
	vc = lb_count(lb_stats(&lb_vip_stats, n->vip), 1, p->bytes);
	if (vc && lb_ip_bad(p->ip, (void *)(long)ctx->data_end)) {
		vc->bad_checksum++;
		return XDP_DROP;
	}
	lb_count(lb_stats(&lb_be_stats, n->backend), 1, p->bytes);
	t->from = (struct lb_tuple){ .src = p->flow.src, .dst = p->flow.dst, .sport = p->flow.sport, .dport = p->flow.dport };
	t->to = (struct lb_tuple){ .src = n->flow.dst, .dst = n->flow.src, .sport = n->flow.dport, .dport = n->flow.sport };
	/* The connection entry (the flow's CPU's value) is touched once a
	 * tick, and on FIN: another reply in the same tick would write the
	 * same time into it, so it skips the lookup. */
	if (n->touched != now || (p->th && p->th->fin)) {
		c = bpf_map_lookup_percpu_elem(&lb_conns, &n->flow, n->cpu);
		if (c && c->nat_port == p->flow.dport)
			lb_conn_touch(c, lb_tcp_flags(p->th), 1, now);
		n->touched = now;
	}
	if (p->th && p->th->rst)
		lb_conn_forget(&n->flow, &t->key);
	if (p->frag)
		lb_frag_note(&p->flow, p->frag_id, &t->to.src, &t->to.dst, n->backend, n->vip, 1, 0, cfg, now);
	lb_rewrite(p->ip, p->ip6, p->th, p->uh, &t->from, &t->to);
	return lb_xmit(ctx, p->eth, p->flow.family, p->flow.proto, &t->to.src, &t->to.dst, p->tot_len, NULL, &n->l2, cfg,
		       now, vc);
}

/* Not for a VIP: a reply to the NAT source on a NAT port, or nothing of ours. */
static __always_inline int lb_reply_or_pass(struct xdp_md *ctx, struct lb_pkt *p, const struct lb_config *cfg)
{
	const struct lb_addr *nat = lb_nat_addr(cfg, p->flow.family);
	__u16 port = bpf_ntohs(p->flow.dport);

	if (nat && port >= cfg->port_min && port <= cfg->port_max && lb_addr_eq(nat, &p->flow.dst))
		return lb_reply(ctx, p, cfg);
	return XDP_PASS;
}

/* ---- functions of their own: new flows, too big, fragments, ICMP ---- */

/* Answer the packet, too big by the time it is encapsulated, with
 * "fragmentation needed" or Packet Too Big advertising `mtu`. */
__noinline int lb_too_big(struct xdp_md *ctx, __u32 mtu)
{
	void *end = (void *)(long)ctx->data_end;
	struct xdplb_cursor c;
	struct ethhdr *eth;
	__u32 l2len;
	int l3, rc;

	xdplb_cursor_init(&c, ctx);
	l3 = xdplb_parse_eth(&c, &eth);
	l2len = c.pos - (void *)eth;
	if (l3 == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip;

		if (xdplb_parse_ipv4(&c, &ip) < 0)
			return XDP_DROP;
		rc = xdplb_ptb4_check(ip, l2len, end);
		if (rc == XDPLB_PTB_SENT)
			rc = xdplb_ptb4(ctx, ip, l2len, mtu);
	} else if (l3 == bpf_htons(ETH_P_IPV6)) {
		struct xdplb_frag6_hdr *fh;
		struct ipv6hdr *ip6;
		int proto = xdplb_parse_ipv6(&c, &ip6);

		if (proto < 0)
			return XDP_DROP;
		fh = c.pos;
		if (proto == IPPROTO_FRAGMENT) {
			if ((void *)(fh + 1) > end)
				return XDP_DROP;
			proto = fh->nexthdr;
			c.pos = fh + 1;
		}
		rc = xdplb_ptb6_check(ip6, l2len, c.pos, proto, end);
		if (rc == XDPLB_PTB_SENT)
			rc = xdplb_ptb6(ctx, ip6, l2len, mtu);
	} else {
		return XDP_DROP;
	}
	return rc == XDPLB_PTB_SENT ? XDP_TX : XDP_DROP;
}

/* This flow's NAT entry now belongs to this CPU's value of lb_conns. */
static __always_inline void lb_nat_claim(const struct lb_flow *flow, const struct lb_backend *be, __be16 nport,
					 struct lb_nat_key *key)
{
	struct lb_nat *n;

	*key = (struct lb_nat_key){ .backend = be->addr, .bport = be->port, .nport = nport,
				    .proto = flow->proto, .family = flow->family };
	n = bpf_map_lookup_elem(&lb_nat, key);

	if (n && lb_flow_eq(&n->flow, flow))
		n->cpu = bpf_get_smp_processor_id();
}

/* lb_slow()'s `how`: LB_SLOW_* | TCP flags << 8 | L2 length << 16. */
#define LB_HOW(slow, tcp_flags, l2len) ((__u32)(slow) | (__u32)(tcp_flags) << 8 | (__u32)(l2len) << 16)

/* The packet ends here: counted on its VIP with the reason, dropped. */
static __always_inline int lb_drop(struct xdp_md *ctx, struct lb_counters *vc, __u64 *reason)
{
	vc->packets++;
	vc->bytes += ctx->data_end - ctx->data;
	(*reason)++;
	return XDP_DROP;
}

/* An IPv4 packet (`l2len` bytes of L2 before it) whose header checksum is wrong. */
static __always_inline int lb_ip_bad_at(struct xdp_md *ctx, const struct lb_flow *flow, __u32 l2len)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct iphdr *ip;

	if (flow->family != LB_FAMILY_V4 || l2len > XDPLB_L2_MAX)
		return 0;
	ip = data + l2len;
	if ((void *)(ip + 1) > end)
		return 1;
	return lb_ip_bad(ip, end);
}

/* A packet to `vip` of no tracked flow: a backend by Maglev, for NAT a
 * port, and a new connection entry (over a stale one for the 5-tuple);
 * handed back to be sent (the packet is counted there). */
static __always_inline int lb_new_flow(struct xdp_md *ctx, const struct lb_flow *flow, __u32 how,
				       const struct lb_vip *vip, const struct lb_vip_fwd *fwd,
				       const struct lb_config *cfg, __u64 now, struct lb_handoff *h,
				       struct lb_conn *fresh)
{
	struct lb_counters *vc = lb_stats(&lb_vip_stats, vip->id), *bc;
	__u8 tcp_flags = how >> 8;
	const struct lb_addr *nat;
	struct lb_backend *be;
	__u32 backend;

	if (!vc)
		return XDP_ABORTED;
	if (lb_ip_bad_at(ctx, flow, (how >> 16) & 0xff))
		return lb_drop(ctx, vc, &vc->bad_checksum);
	if (flow->proto == IPPROTO_TCP && !(tcp_flags & LB_TCP_SYN))
		vc->conn_misses++;
	be = lb_pick(vip, flow, &backend, 0);
	if (!be)
		return lb_drop(ctx, vc, &vc->no_backend);
	*fresh = (struct lb_conn){ .last_seen = now, .backend = backend, .fin_client = tcp_flags & LB_TCP_FIN };
	if (fwd->mode == LB_FWD_NAT) {
		nat = lb_nat_addr(cfg, flow->family);
		if (!nat)
			return lb_drop(ctx, vc, &vc->no_backend);
		fresh->nat_port = lb_nat_alloc(flow, be, backend, vip->id, nat, cfg, now, tcp_flags & LB_TCP_SYN);
		if (!fresh->nat_port)
			return lb_drop(ctx, vc, &vc->nat_exhausted);
	}
	/* A DSR flow's RST needs no entry: it ends the flow it would make. */
	if (fresh->nat_port || !(tcp_flags & LB_TCP_RST))
		bpf_map_update_elem(&lb_conns, flow, fresh, BPF_ANY);
	vc->new_conns++;
	bc = lb_stats(&lb_be_stats, backend);
	if (bc)
		bc->new_conns++;
	h->backend = backend;
	h->nat_port = fresh->nat_port;
	return LB_GO_TRACKED;
}

/* A TCP or UDP packet of `flow` the inline path could not place: not in
 * the flow cache, and a SYN (for NAT, a retransmission keeps its port: the
 * table is read here), or no usable entry for this CPU (`how`: LB_HOW()).
 * Hands back LB_GO_TRACKED with the flow's backend, LB_GO_STATELESS with
 * a stateless VIP's id and the flow's entry of its table (the VIP was not
 * found by lb_vip_index), LB_GO_REPLY when the destination is no VIP, or a
 * verdict. Changes nothing in the packet, so
 * the caller's view of it stays valid; the flow comes from the caller's
 * stack, where it was parsed (this function's own stack is short). */
__noinline int lb_slow(struct xdp_md *ctx, const struct lb_flow *flow, __u32 how)
{
	struct lb_handoff *h = lb_handoff_slot();
	struct lb_slow_work *w;
	struct lb_config *cfg;
	struct lb_vip_fwd *fwd;
	struct lb_backend *be;
	struct lb_vip *vip;
	struct lb_conn *c;
	__u32 zero = 0;
	__u64 now;

	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	w = bpf_map_lookup_elem(&lb_slow_scratch, &zero);
	if (!cfg || !h || !w || !flow)
		return XDP_ABORTED;
	w->vk = (struct lb_vip_key){ .addr = flow->dst, .port = flow->dport, .proto = flow->proto, .family = flow->family };
	vip = bpf_map_lookup_elem(&lb_vips, &w->vk);
	if (!vip)
		return LB_GO_REPLY; /* its VIP bit was another's */
	fwd = lb_fwd(vip->id);
	if (!fwd)
		return XDP_ABORTED;
	if (fwd->flags & LB_FWD_STATELESS) {
		/* Its lb_vip_index entry is shared with another VIP's hash,
		 * or being written: no connection table all the same. */
		struct lb_slot *s = lb_slot_at(vip->id, lb_flow_key_hash(flow));

		h->backend = vip->id;
		h->slot = s ? *s : (struct lb_slot){ .cur = LB_SLOT_NONE, .prev = LB_SLOT_NONE };
		return LB_GO_STATELESS;
	}
	/* A DSR SYN starts the 5-tuple over. An earlier connection's entry
	 * may live on in another CPU's value (a DSR flow ends at the backend,
	 * unseen here), and that CPU would send the new flow's later packets
	 * after the old backend: the element goes, and lb_new_flow() makes it
	 * anew with this CPU's value only. (NAT reads its entry: a SYN sent
	 * again keeps its port; the backend's RST or FIN ends a NAT flow.) */
	if ((how & LB_SLOW_SYN) && fwd->mode != LB_FWD_NAT)
		bpf_map_delete_elem(&lb_conns, flow);
	now = lb_now(cfg);
	if ((how & LB_SLOW_ADOPT) || ((how & LB_SLOW_SYN) && fwd->mode == LB_FWD_NAT)) {
		c = bpf_map_lookup_elem(&lb_conns, flow);
		if (c && (c->last_seen || lb_conn_adopt(flow, c))) {
			be = lb_tracked(c, flow, how >> 8, cfg, now);
			/* A DSR flow cannot go on as NAT (see lb_process()). */
			if (be && (c->nat_port || fwd->mode != LB_FWD_NAT)) {
				if (c->nat_port && (how & LB_SLOW_ADOPT))
					lb_nat_claim(flow, be, c->nat_port, &w->nk);
				lb_conn_touch(c, how >> 8, 0, now);
				h->backend = c->backend;
				h->nat_port = c->nat_port;
				return LB_GO_TRACKED;
			}
		}
	}
	return lb_new_flow(ctx, flow, how, vip, fwd, cfg, now, h, &w->fresh);
}

/* A later fragment of a datagram whose first fragment was balanced: the
 * same addresses, the same way (lb_frag.h); otherwise passed on. */
__noinline int lb_fragment(struct xdp_md *ctx)
{
	struct lb_handoff *h = lb_handoff_slot();
	struct lb_backend *be = NULL;
	struct lb_pkt p = {};
	struct lb_frag_pair *s;
	struct lb_counters *vc;
	struct lb_config *cfg;
	struct lb_frag *e;
	__u32 backend, zero = 0;
	__u64 now;

	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg || !h || lb_parse(ctx, &p) != LB_FRAG_LATER)
		return XDP_ABORTED; /* the inline path parsed it already */
	now = lb_now(cfg);
	s = lb_frag_key_of(&p.flow, p.frag_id);
	if (!s)
		return XDP_PASS;
	e = bpf_map_lookup_elem(&lb_frags, &s->key);
	if (!e || e->expires <= now)
		return XDP_PASS;
	backend = e->backend;
	vc = lb_count(lb_stats(&lb_vip_stats, e->vip), e->reply, p.bytes);
	if (vc && lb_ip_bad(p.ip, (void *)(long)ctx->data_end)) {
		vc->bad_checksum++;
		return XDP_DROP;
	}
	lb_count(lb_stats(&lb_be_stats, backend), e->reply, p.bytes);
	if (!e->reply) {
		struct lb_vip_fwd *fwd = lb_fwd(e->vip);

		be = bpf_map_lookup_elem(&lb_backends, &backend);
		if (!be || !fwd)
			return XDP_PASS;
		/* The first fragment went the way the entry shows (NAT
		 * rewrote its source), whatever the VIP does now: the rest
		 * go that way, or, sent by DSR to a VIP now NAT, nowhere. */
		if (lb_addr_eq(&e->src, &p.flow.src)) {
			if (fwd->mode == LB_FWD_NAT)
				return XDP_DROP;
			h->backend = backend;
			h->hash = e->hash;
			return LB_GO_DSR; /* the caller knows the packet's shape */
		}
	}
	lb_rewrite_ip(p.ip, p.ip6, &e->src, &e->dst);
	return lb_xmit(ctx, p.eth, p.flow.family, p.flow.proto, &e->src, &e->dst, p.tot_len,
		       be, e->reply ? lb_l2_scratch() : bpf_map_lookup_elem(&lb_l2_cache, &backend), cfg, now, vc);
}

/* An ICMP error about a reply of DSR flow `flow` (d->flow), which the
 * backend sent to the client itself: to that backend, encapsulated (or
 * MAC-addressed) like the flow's own packets, so the backend's stack,
 * which holds the connection, learns of it (path MTU discovery). */
static __always_inline int lb_icmp_forward(struct xdp_md *ctx, struct lb_icmp *m, struct lb_icmp_data *d,
					   const struct lb_backend *be, __u32 backend)
{
	struct lb_counters *vc = lb_stats(&lb_vip_stats, be->vip_id);
	struct lb_handoff *h = lb_handoff_slot();

	if (!vc || !h)
		return XDP_ABORTED;
	if (lb_ip_bad(m->ip, (void *)(long)ctx->data_end)) {
		vc->bad_checksum++;
		return XDP_DROP;
	}
	vc->icmp_forwarded++;
	h->backend = backend;
	h->hash = lb_flow_key_hash(&d->flow);
	h->shape = LB_SHAPE(m->l3 - (void *)m->eth, d->inner.family, m->ip ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	h->len = m->tot_len;
	return LB_GO_DSR;
}

/* An ICMP error about a balanced flow, translated (NAT), or handed back
 * to be forwarded (DSR: LB_GO_DSR); XDP_PASS for any other packet that is
 * not TCP or UDP. */
__noinline int lb_icmp(struct xdp_md *ctx)
{
	struct lb_backend *be = NULL;
	const struct lb_addr *nat;
	struct lb_counters *vc = NULL;
	struct lb_icmp_data *d;
	struct lb_config *cfg;
	struct lb_icmp m = {};
	struct lb_l2 *l2 = NULL;
	__u32 zero = 0;
	__u64 now;

	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	d = bpf_map_lookup_elem(&lb_icmp_scratch, &zero);
	if (!cfg || !d || lb_icmp_parse(ctx, &m, d) < 0)
		return XDP_PASS;
	now = lb_now(cfg);
	nat = lb_nat_addr(cfg, d->inner.family);
	d->from.src = d->inner.src;
	d->from.dst = d->inner.dst;
	d->from.sport = d->inner.sport;
	d->from.dport = d->inner.dport;
	d->ofrom.src = d->osrc;
	d->ofrom.dst = d->odst;
	d->oto.src = d->osrc;
	if (lb_addr_eq(&d->odst, &d->inner.src)) {
		/* About a reply VIP -> client: to the flow's backend. */
		struct lb_vip_fwd *fwd = NULL;
		struct lb_conn *c = NULL;
		__u32 backend = 0;

		d->flow.src = d->inner.dst;
		d->flow.dst = d->inner.src;
		d->flow.sport = d->inner.dport;
		d->flow.dport = d->inner.sport;
		d->flow.proto = d->inner.proto;
		d->flow.family = d->inner.family;
		if (lb_vip_maybe(&d->flow)) {
			/* The flow's entry is on the CPU its packets arrive
			 * on, likely not this one. */
			c = lb_conn_find(&d->flow);
			if (c) {
				backend = c->backend;
				be = lb_backend_of(backend, &d->flow);
			}
			if (be) {
				fwd = lb_fwd(be->vip_id);
			} else {
				/* Untracked here: a DSR VIP's table says where
				 * the flow went, as it would for its packets. */
				struct lb_vip *vip;

				c = NULL; /* an entry whose backend no longer holds */
				d->vk = (struct lb_vip_key){ .addr = d->flow.dst, .port = d->flow.dport,
							     .proto = d->flow.proto, .family = d->flow.family };
				vip = bpf_map_lookup_elem(&lb_vips, &d->vk);

				fwd = vip ? lb_fwd(vip->id) : NULL;
				if (fwd && fwd->mode != LB_FWD_NAT)
					be = lb_pick(vip, &d->flow, &backend, fwd->flags & LB_FWD_STATELESS);
			}
			/* A flow is forwarded or translated the way it started
			 * (its NAT port says), whatever its VIP does now. */
			if (be && fwd && fwd->mode != LB_FWD_NAT && !(c && c->nat_port))
				return lb_icmp_forward(ctx, &m, d, be, backend);
			if (!c || !c->nat_port || !fwd || !nat)
				be = NULL;
		}
		if (be) {
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

		if (!nat || !lb_addr_eq(&d->odst, nat) || !lb_addr_eq(&d->inner.src, nat))
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
	if (vc && lb_ip_bad(m.ip, (void *)(long)ctx->data_end)) {
		vc->bad_checksum++;
		return XDP_DROP;
	}
	if (vc)
		vc->icmp_errors++;
	lb_icmp_rewrite(&m, d);
	return lb_xmit(ctx, m.eth, d->inner.family, m.ip ? IPPROTO_ICMP : IPPROTO_ICMPV6, &d->oto.src, &d->oto.dst,
		       m.tot_len, be, l2 ? l2 : lb_l2_scratch(), cfg, now, vc);
}

/* ---- the inline path ---- */

static __always_inline int lb_process(struct xdp_md *ctx)
{
	struct lb_backend *be = NULL, *prev = NULL;
	struct lb_vip_fwd *fwd = NULL, *tf = NULL; /* tf: the tracked flow's VIP's */
	struct lb_counters *vc;
	struct lb_conn *c = NULL;
	struct lb_handoff *h;
	struct lb_pkt p = {};
	struct lb_config *cfg;
	struct lb_cached *e;
	__u32 zero = 0, backend, vip_id = 0, gen = 0, syn = 0, tvip = 0; /* tvip: tf's VIP */
	struct lb_slot *sp = NULL;
	__be16 nport;
	__u64 now;
	int rc, bit;

	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg)
		return XDP_PASS;
	rc = lb_parse(ctx, &p);
	if (rc) {
		rc = rc == LB_FRAG_LATER ? lb_fragment(ctx) : lb_icmp(ctx);
		if (rc != LB_GO_DSR)
			return rc;
		h = lb_handoff_slot();
		if (!h)
			return XDP_ABORTED;
		if (p.frag == LB_FRAG_LATER) {
			h->shape = LB_SHAPE(p.l2len, p.flow.family, p.flow.proto);
			h->len = p.tot_len;
		}
		return lb_dsr_send_g(ctx, h->backend, h->hash, h->shape, h->len);
	}
	bit = lb_vip_bit(&p.flow.dst, p.flow.dport, p.flow.proto, p.flow.family);
	if (bit < 0)
		return lb_reply_or_pass(ctx, &p, cfg);
	now = lb_now(cfg);
	p.hash = lb_flow_key_hash(&p.flow);
	rc = lb_stateless_id(&p.flow, bit);
	fwd = rc >= 0 ? lb_fwd(rc) : NULL;
	if (fwd && (fwd->flags & LB_FWD_STATELESS)) {
		vip_id = rc;
	} else {
		fwd = NULL;
		e = lb_cache_slot(p.hash);
		if (!e)
			return XDP_ABORTED;
		if (lb_cache_hit(e, &p.flow, p.th, now)) {
			backend = e->backend;
			nport = e->nat_port;
			tvip = e->vip_id;
			be = lb_backend_at(backend, tvip, &p.flow);
			if (be) {
				tf = lb_fwd(tvip);
				if (!tf)
					return XDP_ABORTED;
			}
		}
		if (!be) {
			e->tick = 0; /* whatever the table says next, not this */
			/* A SYN starts a flow: a DSR VIP takes it without reading
			 * the table (lb_slow()). */
			if (!(p.th && p.th->syn && !p.th->ack)) {
				c = bpf_map_lookup_elem(&lb_conns, &p.flow);
				if (c && c->last_seen) {
					be = lb_tracked(c, &p.flow, lb_tcp_flags(p.th), cfg, now);
					backend = c->backend;
					nport = c->nat_port;
					if (be) {
						tvip = be->vip_id;
						tf = lb_fwd(tvip);
						if (!tf)
							return XDP_ABORTED;
						if (lb_cache_usable(p.th))
							lb_cache_fill(e, &p.flow, c, tvip, now);
					}
				}
			}
		}
		/* A DSR flow (no NAT port) whose VIP now forwards by NAT: its
		 * backend knows it by the client's address, which NAT would
		 * hide, so it starts over as a NAT flow, which the backend
		 * resets (and the client hears at once). */
		if (be && !nport && tf && tf->mode == LB_FWD_NAT) {
			be = NULL;
			e->tick = 0;
		}
		if (!be) {
			rc = lb_slow(ctx, &p.flow,
				     LB_HOW(!c ? LB_SLOW_SYN * (p.th && p.th->syn && !p.th->ack) : c->last_seen ? 0 : LB_SLOW_ADOPT,
					    lb_tcp_flags(p.th), p.l2len));
			if (rc == LB_GO_REPLY)
				return lb_reply_or_pass(ctx, &p, cfg);
			h = lb_handoff_slot();
			if (!h)
				return XDP_ABORTED;
			if (rc == LB_GO_STATELESS) {
				vip_id = h->backend;
				sp = &h->slot;
				fwd = lb_fwd(vip_id);
				if (!fwd)
					return XDP_ABORTED;
			} else if (rc != LB_GO_TRACKED) {
				return rc;
			} else {
				backend = h->backend;
				nport = h->nat_port;
				be = bpf_map_lookup_elem(&lb_backends, &backend);
				if (!be)
					return XDP_ABORTED;
				tvip = be->vip_id;
				tf = lb_fwd(tvip);
				c = NULL; /* touched there */
			}
		}
	}
	if (fwd) {
		/* A stateless VIP: its table's entry for the flow says where,
		 * and maybe where before. */
		__u32 prev_id;

		vc = lb_vip_count(vip_id, &p);
		if (!vc)
			return XDP_ABORTED;
		if (!sp)
			sp = lb_slot_at(vip_id, p.hash);
		if (!sp)
			return lb_count_drop(vc, &vc->no_backend);
		backend = sp->cur;
		prev_id = sp->prev;
		gen = sp->gen;
		be = lb_slot_backend(backend, vip_id, 0);
		if (!be)
			return lb_count_drop(vc, &vc->no_backend);
		if (prev_id != LB_SLOT_NONE)
			prev = lb_slot_backend(prev_id, vip_id, 1);
		syn = p.th && p.th->syn && !p.th->ack;
		vc->new_conns += syn;
	} else {
		/* A tracked flow, the way it started: a flow with a NAT port
		 * stays NAT after its VIP turned to DSR (its backend knows it
		 * by the NAT source, and replies still come back here). */
		fwd = tf;
		if (!fwd || !be)
			return XDP_ABORTED;
		if (fwd->mode == LB_FWD_NAT || nport)
			return lb_forward(ctx, &p, cfg, c, be, backend, nport, now);
		vc = lb_vip_count(tvip, &p);
		if (!vc)
			return XDP_ABORTED;
		if (c)
			lb_conn_touch(c, lb_tcp_flags(p.th), 0, now);
		if (p.th && p.th->rst)
			bpf_map_delete_elem(&lb_conns, &p.flow);
	}
	if (lb_ip_bad(p.ip, (void *)(long)ctx->data_end))
		return lb_count_drop(vc, &vc->bad_checksum);
	return lb_dsr_send(ctx, &p, cfg, fwd, vc, be, backend, prev, gen, syn, now);
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	return xdplb_return(ctx, lb_process(ctx));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
