/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The load balancer's maps and the structs in them. Every struct here is
 * mirrored in src/programs/lb/layout.ts and checked against this object's
 * BTF by test/kernel/lb-layout.test.ts. All of these maps except the
 * counters' are shared by every interface the balancer runs on (pinned once,
 * see src/programs/lb/spec.ts); addresses and ports are in network order.
 */
#ifndef XDPLB_LB_MAPS_H
#define XDPLB_LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LB_MAX_VIPS 512
#define LB_MAX_BACKENDS 16384
#define LB_CONN_ENTRIES 262144
/* CPUs whose connection-table values a flow that moved is looked for on. */
#define LB_MAX_CPUS 128
#define LB_NAT_ENTRIES 262144
/* Template size of a Maglev table; a VIP may use another prime size
 * (BPF_F_INNER_MAP lets inner arrays differ in max_entries). */
#define LB_TABLE_SIZE 65537
#define LB_NO_BACKEND 0xffffffff

#define LB_FAMILY_V4 4
#define LB_FAMILY_V6 6

/* IPv4 in w[0], the rest zero; IPv6 in all four words. */
struct lb_addr {
	__u32 w[4];
};

struct lb_vip_key {
	struct lb_addr addr;
	__be16 port;
	__u8 proto;
	__u8 family;
};

struct lb_vip {
	__u32 id; /* index into lb_maglev, lb_vip_stats */
	__u32 table_size;
};

#define LB_BACKEND_IN_USE 1
#define LB_BACKEND_MAC 2 /* `mac` was configured: no FIB lookup */
#define LB_BACKEND_REMOVED 4 /* out of the Maglev table, kept for established flows */

struct lb_backend {
	struct lb_addr addr;
	__be16 port;
	__u8 family;
	__u8 flags;
	__u32 vip_id;
	__u32 weight; /* for userspace: the table already reflects it */
	__u8 mac[6];
	__u8 pad[2];
};

#define LB_HAS_NAT4 1
#define LB_HAS_NAT6 2

struct lb_config {
	struct lb_addr nat4;
	struct lb_addr nat6;
	__u16 port_min; /* NAT source ports, host order */
	__u16 port_max;
	__u32 flags;
	__u32 tcp_idle_s;
	__u32 udp_idle_s;
	__u32 time_wait_s; /* after FIN both ways, before the NAT port is reused */
	/* Ticks per second of lb_now(): the kernel's HZ, read inline through
	 * bpf_jiffies64(); 0 when userspace could not learn it, and then the
	 * coarse clock's nanoseconds (a helper call, tens of ns dearer). */
	__u32 hz;
};

/* A client's flow as it arrives: client -> VIP. */
struct lb_flow {
	struct lb_addr src;
	struct lb_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* Per CPU (lb_conns): the CPU a flow's packets arrive on keeps its entry,
 * so a new flow costs one insert and CPUs never write one another's
 * values. All zero on a CPU that has not seen the flow (last_seen 0 reads
 * as expired). Each FIN flag has a byte of its own, written by one side
 * only: a NAT reply marks its flow's entry on the flow's CPU, and two
 * plain byte stores cannot undo each other. */
struct lb_conn {
	__u64 last_seen; /* lb_now() */
	__u32 backend;
	__be16 nat_port; /* 0 for a DSR flow */
	__u8 fin_client;
	__u8 fin_backend;
};

/* A FIB answer kept for LB_L2_CACHE_S: per backend and CPU toward
 * backends (lb_l2_cache), in the NAT entry toward a flow's client. `dst`
 * tells a reused backend id from the one the answer was for. */
struct lb_l2 {
	struct lb_addr dst;
	__u64 expires; /* lb_now() ticks */
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
	__u16 mtu; /* of the route, for packets that grow (encapsulation) */
	__u8 pad[6];
};

/* A backend's reply as it arrives: backend:port -> NAT source:nat_port. */
struct lb_nat_key {
	struct lb_addr backend;
	__be16 bport;
	__be16 nport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct lb_nat {
	struct lb_flow flow;
	__u32 backend;
	__u32 vip;
	struct lb_l2 l2; /* toward the client */
	__u64 touched; /* lb_now() when a reply last touched the flow's entry */
	__u32 cpu; /* whose lb_conns value is the flow's */
	__u8 pad[4];
};

/* Fragments: the first one of a datagram carries the ports and is balanced
 * like any packet of its flow; where it went is kept here, keyed by what
 * the later fragments share with it (addresses, IP id, protocol), so they
 * follow it with their addresses rewritten. */
#define LB_FRAG_ENTRIES 16384
struct lb_frag_key {
	struct lb_addr src;
	struct lb_addr dst;
	__be32 id;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct lb_frag {
	struct lb_addr src; /* rewritten addresses */
	struct lb_addr dst;
	__u64 expires; /* lb_now() ticks */
	__u32 backend;
	__u32 vip;
	__u8 reply; /* backend -> client */
	__u8 pad[3];
	__u32 hash; /* the first fragment's flow hash (an encapsulation's entropy) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_FRAG_ENTRIES);
	__type(key, struct lb_frag_key);
	__type(value, struct lb_frag);
} lb_frags SEC(".maps");

/* One row per VIP and one per backend (the NAT, FIB and table fields only
 * count on VIP rows). Per CPU, summed in userspace. */
struct lb_counters {
	__u64 packets; /* client -> VIP */
	__u64 bytes;
	__u64 reply_packets; /* backend -> client */
	__u64 reply_bytes;
	__u64 new_conns;
	__u64 conn_misses; /* TCP non-SYN without a tracked connection */
	__u64 no_backend; /* dropped: every backend drained or removed */
	__u64 nat_exhausted; /* dropped: no free NAT source port */
	__u64 fib_no_neigh; /* neighbour unresolved: passed to the kernel */
	__u64 fib_failures; /* dropped: no route, forwarding off, ... */
	__u64 icmp_errors; /* ICMP errors about the VIP's flows, translated */
	__u64 bad_checksum; /* dropped: IPv4 header checksum already wrong */
	__u64 encapsulated; /* sent in an outer header (ipip, gue) */
	__u64 too_big; /* answered: too big once encapsulated */
	__u64 icmp_forwarded; /* ICMP errors about DSR flows, sent to their backend */
};

/* How a VIP's packets reach its backends. */
#define LB_FWD_NAT 0 /* addresses rewritten both ways */
#define LB_FWD_DSR_L2 1 /* destination MAC only; backends on the segment hold the VIP */
#define LB_FWD_IPIP 2 /* IPv4/IPv6 in IPv4/IPv6 */
#define LB_FWD_GUE 3 /* outer IP + UDP, then the inner IP packet (GUE variant 1) */

#define LB_CHAIN_GENS 32

/* lb_vip_fwd's flags. */
#define LB_FWD_STATELESS 1 /* gue only: no connection table; the table's entry decides (lb_stateless.h) */

/* A VIP's forwarding parameters, by VIP id (lb_vip_fwd): read on every
 * packet, so an inline array read, not a field of lb_vips' hash value. The
 * outer source of an encapsulated packet is src4 (or src6) with the bits of
 * vary4 (or of vary6, over src6's last word) taken from the flow's hash: a
 * prefix's host part spread over flows, so that the backend's NIC spreads
 * them over its queues; the same flow always gets the same address. */
struct lb_vip_fwd {
	struct lb_addr src6;
	__be32 src4;
	__be32 vary4;
	__be32 vary6;
	__be16 gue_port; /* 6080 unless configured (src/programs/lb/layout.ts) */
	__u8 mode; /* LB_FWD_* */
	__u8 flags; /* LB_FWD_STATELESS */
	/* The rest is the control plane's, never read here. A stateless VIP's
	 * chaining: how long an entry names its previous backend; the VIP's
	 * change counter; at its last change, how many entries lost a
	 * previous backend still inside its window (changed again, or more
	 * than LB_CHAIN_GENS changes ago); when each of the last LB_CHAIN_GENS
	 * changes was made (CLOCK_BOOTTIME ns, change g at [g % LB_CHAIN_GENS]),
	 * which says when each entry's chaining ends. */
	__u32 chain_window_s;
	__u32 gen;
	__u32 lost;
	__u32 evicted;
	__u64 changed_at[LB_CHAIN_GENS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, struct lb_vip_key);
	__type(value, struct lb_vip);
} lb_vips SEC(".maps");

/* A bit per hash of (address, port, protocol, family), set for every VIP
 * (lb_vip_hash, mirrored in src/programs/lb/vipbits.ts). A clear bit says
 * "no VIP" with an inline array read, so traffic that is not for a VIP pays
 * no hash-map lookup; a set bit may be a collision, lb_vips decides. */
#define LB_VIP_BITS_WORDS 1024
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_VIP_BITS_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} lb_vip_bits SEC(".maps");

/* The stateless VIPs by the same hash as lb_vip_bits' (bit index ->
 * VIP id + 1; 0 when no stateless VIP has that hash, or two do): a
 * stateless VIP is known with inline array reads, its key checked in
 * lb_vip_ids, before any connection-table lookup. Only a hint: a miss
 * takes the path of every VIP, which finds the VIP in lb_vips. Mmapable:
 * userspace reads its 256 KiB back in one copy. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LB_VIP_BITS_WORDS * 64);
	__type(key, __u32);
	__type(value, __u32);
} lb_vip_index SEC(".maps");

/* VIP id -> its key (all zero when the id is free). A tracked flow finds
 * its VIP through its backend's vip_id and this inline array read, not
 * through lb_vips: an established packet makes one hash lookup only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct lb_vip_key);
} lb_vip_ids SEC(".maps");

/* A Maglev table's entry: the backend that takes the entry's packets, and
 * for a stateless VIP the one that took them before `cur` last changed
 * (while chaining lasts: the control plane clears it after the VIP's
 * chain_window_s) and the VIP's change counter at that change. Backend ids
 * are below LB_MAX_BACKENDS, so 16 bits hold them; the whole entry is the
 * 8 bytes a 4-byte value took anyway (arrays lay values 8 bytes apart). */
#define LB_SLOT_NONE 0xffff
struct lb_slot {
	__u16 cur; /* LB_SLOT_NONE: no backend (every one drained) */
	__u16 prev; /* LB_SLOT_NONE: none */
	__u32 gen;
};

/* Userspace fills a new table through mmap (BPF_F_MMAPABLE): one copy
 * instead of an update per entry. */
struct lb_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, LB_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct lb_slot);
};

/* VIP id -> its Maglev table; userspace swaps a whole table in one update. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct lb_table);
} lb_maglev SEC(".maps");

/* Mmapable so that userspace reads all 16384 entries back in one copy
 * (a batch lookup copies element by element: 4.5 ms). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend);
} lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
} lb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct lb_vip_fwd);
} lb_vip_fwd SEC(".maps");

/* Per-CPU values and per-CPU LRU lists: an insert takes nothing another
 * CPU holds but the key's hash bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, LB_CONN_ENTRIES);
	__type(key, struct lb_flow);
	__type(value, struct lb_conn);
} lb_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_NAT_ENTRIES);
	__type(key, struct lb_nat_key);
	__type(value, struct lb_nat);
} lb_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_l2);
} lb_l2_cache SEC(".maps");

/* What lb_conns said about a flow, kept per CPU for the rest of the tick
 * (see lb_conntrack.h): the slot is the flow hash's low bits. */
#define LB_FLOW_CACHE_ENTRIES 4096
struct lb_cached {
	struct lb_flow flow;
	__u64 tick; /* lb_now() when lb_conns was read */
	__u32 backend;
	__be16 nat_port;
	/* The backend's VIP: its rows are looked up alongside the backend's
	 * (and the backend's checked against it), not after it. */
	__u16 vip_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_FLOW_CACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct lb_cached);
} lb_flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct lb_counters);
} lb_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_counters);
} lb_be_stats SEC(".maps");

#endif
