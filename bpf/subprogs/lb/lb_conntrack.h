/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Connection tracking: lb_conns remembers each client flow's backend and NAT
 * port. The LRU evicts the oldest flows when full; idle and closed flows
 * expire here, on lookup, by their last_seen time: TCP after tcp_idle_s,
 * UDP after udp_idle_s, and a TCP flow that saw FIN both ways after
 * time_wait_s (the backend may hold the 4-tuple in TIME_WAIT that long, so
 * its NAT port is not reused sooner). An RST ends the flow at once.
 */
#ifndef XDPLB_LB_CONNTRACK_H
#define XDPLB_LB_CONNTRACK_H

#include <linux/tcp.h>
#include "lb_maps.h"

#define LB_NS 1000000000ULL

/* The time of a packet, in ticks of cfg->hz (see struct lb_config). */
static __always_inline __u64 lb_now(const struct lb_config *cfg)
{
	return cfg->hz ? bpf_jiffies64() : bpf_ktime_get_coarse_ns();
}

static __always_inline __u64 lb_ticks(const struct lb_config *cfg, __u32 seconds)
{
	return (__u64)seconds * (cfg->hz ? cfg->hz : LB_NS);
}

static __always_inline int lb_conn_expired(const struct lb_conn *c, __u8 proto,
					   const struct lb_config *cfg, __u64 now)
{
	__u64 idle = now > c->last_seen ? now - c->last_seen : 0;
	__u64 limit;

	if (proto == IPPROTO_UDP)
		limit = cfg->udp_idle_s;
	else if (c->state == (LB_FIN_CLIENT | LB_FIN_BACKEND))
		limit = cfg->time_wait_s;
	else
		limit = cfg->tcp_idle_s;
	return idle >= lb_ticks(cfg, limit);
}

/* A NAT entry is stale, and its port free, when the flow it belonged to is
 * gone, expired, or has moved on to another port (the client reused its
 * source port for a new connection). */
static __always_inline int lb_nat_stale(const struct lb_nat *n, const struct lb_nat_key *key,
					const struct lb_config *cfg, __u64 now)
{
	struct lb_conn *c = bpf_map_lookup_elem(&lb_conns, &n->flow);

	if (!c || c->nat_port != key->nport || c->backend != n->backend)
		return 1;
	return lb_conn_expired(c, key->proto, cfg, now);
}

/* Note a packet of the flow: time, and FIN from the given side. */
static __always_inline void lb_conn_touch(struct lb_conn *c, const struct tcphdr *th, __u8 fin_bit, __u64 now)
{
	/* The clock moves once a tick: most packets need not write (and take
	 * from other CPUs) the entry's cache line. */
	if (c->last_seen != now)
		c->last_seen = now;
	if (th && th->fin)
		c->state |= fin_bit;
}

/*
 * The per-CPU flow cache. A connection-table lookup is a hash lookup (about
 * 45 ns on machines with return-stack mitigations); within one tick of
 * lb_now() a flow's entry can only have been touched to that same tick, so
 * what one packet read is good for the flow's other packets on that CPU
 * until the tick ends. Packets with SYN, FIN or RST always read the table
 * (they change or end the flow), and an RST empties the slot. Something
 * another CPU does to the flow (an RST, an expiry) is seen here at the next
 * tick at the latest, as if those packets had come a moment earlier.
 */
static __always_inline struct lb_cached *lb_cache_slot(const struct lb_flow *f)
{
	__u32 i = lb_flow_hash(f, LB_SEED_CACHE) & (LB_FLOW_CACHE_ENTRIES - 1);

	return bpf_map_lookup_elem(&lb_flow_cache, &i);
}

static __always_inline int lb_cache_usable(const struct tcphdr *th)
{
	return !th || !(th->syn || th->fin || th->rst);
}

static __always_inline int lb_cache_hit(const struct lb_cached *e, const struct lb_flow *f,
					const struct tcphdr *th, __u64 now)
{
	const __u32 *a = (const __u32 *)&e->flow, *b = (const __u32 *)f;
	__u32 diff = 0;

	if (e->tick != now || !lb_cache_usable(th))
		return 0;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(*f) / 4); i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static __always_inline void lb_cache_fill(struct lb_cached *e, const struct lb_flow *f, const struct lb_conn *c,
					  __u64 now)
{
	e->flow = *f;
	e->tick = now;
	e->backend = c->backend;
	e->nat_port = c->nat_port;
}

/* An RST ends the flow: both entries go, the port is free at once. */
static __always_inline void lb_conn_forget(const struct lb_flow *flow, const struct lb_nat_key *key)
{
	bpf_map_delete_elem(&lb_conns, flow);
	bpf_map_delete_elem(&lb_nat, key);
}

#endif
