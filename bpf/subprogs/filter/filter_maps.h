/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The filter's maps and the structs they hold, one set per interface (pinned
 * under /sys/fs/bpf/xdplb/<ifname>/filter/). Mirrored in
 * src/programs/filter/layout.ts and checked against BTF by
 * test/kernel/filter-layout.test.ts. */
#ifndef XDPLB_FILTER_MAPS_H
#define XDPLB_FILTER_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct filter_config {
	__u32 frags_drop;	/* 1: drop IPv4 fragments and IPv6 Fragment headers */
	__u32 ptb_max_pps;	/* Packet Too Big replies per second, all CPUs; 0: none */
};

/* Per CPU, summed by the reader. */
struct filter_stats {
	__u64 eth_frame_err;
	__u64 ip_header_err;
	__u64 ip6_header_err;
	__u64 ip_drop_count;
	__u64 ip6_drop_count;
	__u64 ip_frag_drop_count;
	__u64 ptb_sent_count;
	__u64 ptb_err_count;
	__u64 ptb_mem_err_count;
};

struct filter_key4 {
	__u32 prefixlen;
	__be32 addr;
};

struct filter_key6 {
	__u32 prefixlen;
	__be32 addr[4];
};

#define FILTER_TAG_SIZE 64	/* 63 bytes of text and a NUL */

/* A listed prefix: everything about it lives in the trie's value, so one
 * lookup finds it and the status reads it back with one walk. */
struct filter_prefix {
	__u64 hits;		/* atomic adds: every CPU counts into the same value */
	__u64 load_time;	/* wall clock, ns since the epoch, set by xdp-filter */
	char tag[FILTER_TAG_SIZE];
};

/* The Packet Too Big budget: one window per wall second of
 * bpf_ktime_get_ns(), shared by every CPU under the lock. */
struct filter_ptb_window {
	struct bpf_spin_lock lock;
	__u32 second;
	__u32 sent;
	__u32 pad;
};

#define FILTER_PREFIXES_MAX 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_config);
} filter_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_stats);
} filter_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FILTER_PREFIXES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct filter_key4);
	__type(value, struct filter_prefix);
} filter_drop4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FILTER_PREFIXES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct filter_key6);
	__type(value, struct filter_prefix);
} filter_drop6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_ptb_window);
} filter_ptb SEC(".maps");

/* Which /16s of the IPv4 space hold all or part of a listed prefix (1) and
 * which hold none (0): one array load, inlined by the verifier, lets a
 * packet from an unlisted /16 skip the trie walk, which grows with the list.
 * xdp-filter keeps it in step with filter_drop4. */
#define FILTER_HINT4_BITS 16
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << FILTER_HINT4_BITS);
	__type(key, __u32);
	__type(value, __u32);
} filter_hint4 SEC(".maps");

/* The same for IPv6, by the first 32 bits hashed into 65536 buckets (the /16s
 * of IPv6 are too few and too full of traffic to tell much): 1 where a listed
 * prefix covers part of a /32 with that hash. A prefix shorter than /16 sets
 * every bucket. xdp-filter computes the same hash (filter_hint6_bucket). */
#define FILTER_HINT6_BITS 16
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << FILTER_HINT6_BITS);
	__type(key, __u32);
	__type(value, __u32);
} filter_hint6 SEC(".maps");

static __always_inline __u32 filter_hint6_bucket(__be32 first32)
{
	return (bpf_ntohl(first32) * 0x9e3779b1u) >> (32 - FILTER_HINT6_BITS);
}

#endif
