/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The decapsulator's maps, one set per interface. Mirrored in
 * src/programs/decap/layout.ts and checked against BTF by
 * test/kernel/decap.test.ts. */
#ifndef XDPLB_DECAP_MAPS_H
#define XDPLB_DECAP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define DECAP_IPV4 1 /* addr4 is set */
#define DECAP_IPV6 2 /* addr6 is set */

/* The backend's tunnel endpoint: packets to these addresses are taken out
 * of their outer header. */
struct decap_config {
	__be32 addr6[4];
	__be32 addr4;
	__be16 gue_port; /* UDP port of GUE, network order; 0: no GUE */
	__u8 flags; /* DECAP_IPV4 | DECAP_IPV6 */
	__u8 pad;
};

/* Per CPU, summed by the reader. */
struct decap_stats {
	__u64 ipip4; /* IPIP decapsulated, the inner packet IPv4 */
	__u64 ipip6; /* ... IPv6 */
	__u64 gue4; /* GUE decapsulated, the inner packet IPv4 */
	__u64 gue6; /* ... IPv6 */
	__u64 bytes; /* of the decapsulated frames, as they arrived */
	__u64 not_ours; /* tunnel packets (or GUE control) not for us: passed untouched */
	__u64 malformed; /* tunnel packets to us, truncated or inconsistent: dropped */
	/* Packets that named a previous backend (GUE variant 0 from a
	 * stateless VIP), each counted in one of these three: */
	__u64 delivered; /* delivered here: a SYN, a segment of a socket of ours, or not TCP */
	__u64 chained; /* a TCP segment of no socket here, sent on to the previous backend */
	__u64 unowned; /* a TCP segment of no socket here, delivered all the same: the
			* previous backend is this one, or cannot be reached from here */
};

/* Where a previous backend is reached (a FIB answer), per CPU, kept
 * DECAP_L2_TICKS jiffies: slot by a hash of its address. */
#define DECAP_L2_SLOTS 256
#define DECAP_L2_TICKS 256 /* a second at HZ 250, a quarter at 1000 */
struct decap_l2 {
	__be32 addr[4];
	__u64 expires; /* jiffies */
	__u32 ifindex;
	__u16 mtu;
	__u8 smac[6];
	__u8 dmac[6];
	__u8 family; /* 0: empty */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_L2_SLOTS);
	__type(key, __u32);
	__type(value, struct decap_l2);
} decap_l2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_config);
} decap_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_stats);
} decap_stats SEC(".maps");

#endif
