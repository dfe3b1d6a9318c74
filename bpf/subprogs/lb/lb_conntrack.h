/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Connection tracking: lb_conns remembers each client flow's backend and NAT
 * port, per CPU (the CPU the flow's packets arrive on; a flow seen first on
 * another CPU takes that CPU's value over, see lb_conn_adopt()). The LRU
 * evicts the oldest flows when full; idle and closed flows
 * expire here, on lookup, by their last_seen time: TCP after tcp_idle_s,
 * UDP after udp_idle_s, and a TCP flow that saw FIN both ways after
 * time_wait_s (the backend may hold the 4-tuple in TIME_WAIT that long, so
 * its NAT port is not reused sooner). An RST ends the flow at once.
 */
#ifndef XDPLB_LB_CONNTRACK_H
#define XDPLB_LB_CONNTRACK_H

#include <linux/tcp.h>
#include "lb_maps.h"
#include "lb_hash.h"

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
	else if (c->fin_client && c->fin_backend)
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
	struct lb_conn *c = bpf_map_lookup_percpu_elem(&lb_conns, &n->flow, n->cpu);

	if (!c || c->nat_port != key->nport || c->backend != n->backend)
		return 1;
	return lb_conn_expired(c, key->proto, cfg, now);
}

/* TCP flags as the header's 14th byte holds them (0 for UDP). */
#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_TCP_ACK 0x10

static __always_inline __u8 lb_tcp_flags(const struct tcphdr *th)
{
	return th ? ((const __u8 *)th)[13] : 0;
}

/* Note a packet of the flow: time, and FIN from the client (`backend`
 * 0) or the backend. */
static __always_inline void lb_conn_touch(struct lb_conn *c, __u8 tcp_flags, int backend, __u64 now)
{
	/* The clock moves once a tick: most packets need not write the
	 * entry's cache line. */
	if (c->last_seen != now)
		c->last_seen = now;
	if (tcp_flags & LB_TCP_FIN) {
		if (backend)
			c->fin_backend = 1;
		else
			c->fin_client = 1;
	}
}

/* A live value of the flow's entry on any CPU (this one first), NULL when
 * none: what a CPU that never saw the flow, or a NAT reply or ICMP error
 * on some other CPU, looks at. One call per CPU at most, for rare packets
 * only; with bpf_loop(), whose step the verifier checks once. */
struct lb_find {
	const struct lb_flow *flow;
	__u32 cpu; /* where a live value is; LB_MAX_CPUS: nowhere */
	__u32 zero; /* lb_config's key */
};

/* No stack of its own, not even for a key: it runs one call deeper than
 * its caller, and the balancer's deepest chain of calls is within bytes
 * of the 512 they share. */
static long lb_find_step(__u64 cpu, struct lb_find *f)
{
	struct lb_conn *c = bpf_map_lookup_percpu_elem(&lb_conns, f->flow, cpu);
	struct lb_config *cfg;
	__u64 now;

	if (!c)
		return 1; /* past the last CPU, or the flow is gone */
	cfg = bpf_map_lookup_elem(&lb_config, &f->zero);
	if (!cfg || !c->last_seen)
		return 0;
	now = lb_now(cfg);
	/* Read after the clock's call, which would have it spilled. */
	asm volatile("" ::: "memory");
	if (!lb_conn_expired(c, f->flow->proto, cfg, now)) {
		f->cpu = cpu;
		return 1;
	}
	return 0;
}

static __always_inline struct lb_conn *lb_conn_find(const struct lb_flow *flow)
{
	struct lb_find f = { .flow = flow, .cpu = LB_MAX_CPUS };

	bpf_loop(LB_MAX_CPUS, lb_find_step, &f, 0);
	if (f.cpu >= LB_MAX_CPUS)
		return NULL;
	return bpf_map_lookup_percpu_elem(&lb_conns, flow, f.cpu);
}

/* This CPU's value `mine` of a flow lb_conns holds is all zero: the flow's
 * packets used to arrive on another CPU (its NIC queue changed, or it came
 * in on another interface). Take the live value over, so the flow keeps
 * its backend and NAT port; 0 when no CPU has one. The flow moves: the old
 * CPU's value is cleared, so one value at a time holds the flow's state
 * (a FIN noted on one CPU must not be missing from another's copy when the
 * client reuses the 4-tuple). A flow whose packets keep changing CPUs pays
 * a move each time; with RSS they do not. */
static __always_inline int lb_conn_adopt(const struct lb_flow *flow, struct lb_conn *mine)
{
	struct lb_conn *c = lb_conn_find(flow);

	if (!c)
		return 0;
	*mine = *c;
	c->last_seen = 0;
	return 1;
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
static __always_inline struct lb_cached *lb_cache_slot(__u32 hash)
{
	__u32 i = hash & (LB_FLOW_CACHE_ENTRIES - 1);

	return bpf_map_lookup_elem(&lb_flow_cache, &i);
}

static __always_inline int lb_cache_usable(const struct tcphdr *th)
{
	return !th || !(th->syn || th->fin || th->rst);
}

static __always_inline int lb_cache_hit(const struct lb_cached *e, const struct lb_flow *f,
					const struct tcphdr *th, __u64 now)
{
	return e->tick == now && lb_cache_usable(th) && lb_flow_eq(&e->flow, f);
}

static __always_inline void lb_cache_fill(struct lb_cached *e, const struct lb_flow *f, const struct lb_conn *c,
					  __u32 vip_id, __u64 now)
{
	e->flow = *f;
	e->tick = now;
	e->backend = c->backend;
	e->nat_port = c->nat_port;
	e->vip_id = vip_id;
}

/* An RST ends the flow: both entries go, the port is free at once. */
static __always_inline void lb_conn_forget(const struct lb_flow *flow, const struct lb_nat_key *key)
{
	bpf_map_delete_elem(&lb_conns, flow);
	bpf_map_delete_elem(&lb_nat, key);
}

#endif
