/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The slot protocol. The root tail-calls the filled slots of 0..7 in order;
 * a subprogram ends with `return xdplb_return(ctx, action);`, which counts
 * the verdict once in the subprogram's own row: a PASS handed on to the
 * later filled slots as PASS, one that no later slot takes as FINAL_PASS.
 * A packet touches one row per slot it crosses and no other; userspace
 * derives the interface totals.
 *
 * Every object that includes this header declares the same shared maps
 * (the global xdplb_slot_mask is one too); the loader makes them the
 * interface's pinned ones (bpf_map__reuse_fd) before the program is
 * loaded, so one object file serves any interface and slot.
 *
 * Samples: final non-PASS verdicts can be reported, 1 in N at random, into
 * the interface's ring buffer with the first snaplen bytes of the frame (the
 * sampler subprogram writes packet samples into the same ring buffer).
 */
#ifndef XDPLB_SLOT_H
#define XDPLB_SLOT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "stats.h"
#include "sample.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, XDPLB_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} xdplb_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_ROWS);
	__type(key, __u32);
	__type(value, struct xdplb_counters);
} xdplb_stats SEC(".maps");

/* Bit i set: slot i holds a program, so the chain tail-calls it; an empty
 * slot costs a bit test instead of a tail call that finds nothing.
 * Userspace keeps it in step with xdplb_slots: a slot is filled before its
 * bit is set, and its bit is cleared before it is emptied (RootArray in
 * src/root/array.ts, the one place that changes either). A global in a
 * section of its own is a one-entry array map, which the loader shares like
 * the maps above; the program reads it with one load (no lookup, no null
 * check). */
__u32 xdplb_slot_mask SEC(".data.xdplb") = 0;

/* Samples for userspace (xdp-sampler --capture). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XDPLB_SAMPLE_RING_BYTES);
} xdplb_samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdplb_sampling);
} xdplb_sampling SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdplb_sample_counters);
} xdplb_sample_stats SEC(".maps");

/* A row of the stats map (an array lookup the verifier inlines). */
static __always_inline struct xdplb_counters *xdplb_row(__u32 row)
{
	return bpf_map_lookup_elem(&xdplb_stats, &row);
}

static __always_inline void xdplb_add(struct xdplb_counters *c, __u32 column, __u64 bytes)
{
	/* Check and index with one 64-bit register: with a verdict known only
	 * at run time, clang otherwise zero-extends a second copy for the index
	 * after the check, and the verifier rejects the unbounded access. */
	__u64 col = column;

	asm volatile("" : "+r"(col));
	if (col >= XDPLB_COLUMNS)
		return;
	/* Per-CPU value: plain adds, no atomics on the fast path. */
	c->packets[col] += 1;
	c->bytes[col] += bytes;
}

/* Tail-call the slots whose bits are set in `mask`, in order. The keys are
 * constants, so the verifier turns each call into a direct jump. A slot
 * emptied after the mask was read falls through to the next one. */
static __always_inline void xdplb_call(struct xdp_md *ctx, __u32 mask)
{
#pragma unroll
	for (__u32 i = 0; i < XDPLB_SLOTS; i++)
		if (mask & (1u << i))
			bpf_tail_call(ctx, &xdplb_slots, i);
}

/* The filled slots from `first` on. When `first` is a load-time constant (a
 * subprogram's slot + 1), the verifier knows the lower bits are clear and
 * prunes the calls to those slots. */
static __always_inline __u32 xdplb_later(__u32 first)
{
	return xdplb_slot_mask & (~0u << first);
}

#ifndef XDPLB_ROOT_PROGRAM
/* This program's slot, set by the loader before load, and the ABI it was
 * built against, which the loader checks. Alone in their own section, in a
 * struct so the layout is fixed: the loader reads and writes the section
 * without parsing BTF. A read-only value known at load time, so the
 * verifier prunes the calls to slots at or before this one. */
struct xdplb_self {
	__u32 slot;
	__u32 abi;
};
const volatile struct xdplb_self xdplb_self SEC(".rodata.xdplb") = { .slot = 0, .abi = XDPLB_ABI_VERSION };
#define xdplb_slot (xdplb_self.slot)

/* Where a sample is assembled: the ring buffer takes a record of constant
 * size from bpf_ringbuf_reserve, so a bounded copy goes through here and
 * bpf_ringbuf_output instead. Per CPU and private to each program. */
struct xdplb_sample_buf {
	struct xdplb_sample hdr;
	__u8 data[XDPLB_SNAP_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdplb_sample_buf);
} xdplb_sample_buf SEC(".maps");

/* True once in `rate` calls on average; never for rate 0. */
static __always_inline int xdplb_one_in(__u32 rate)
{
	return rate && (rate == 1 || bpf_get_prandom_u32() % rate == 0);
}

/* Write one sample of this frame into the ring buffer, or count it lost.
 * Not inlined: a subprogram of its own, it keeps its many helper calls'
 * registers out of the programs' hot paths (fewer registers saved on the
 * way in and out of every packet). */
static __noinline void xdplb_sample(struct xdp_md *ctx, __u32 kind, __u32 action)
{
	struct xdplb_sample_counters *counters;
	struct xdplb_sampling *cfg;
	struct xdplb_sample_buf *buf;
	__u32 zero = 0, len;
	__u64 cap; /* 64-bit: the bounds checked are the bounds passed */

	cfg = bpf_map_lookup_elem(&xdplb_sampling, &zero);
	buf = bpf_map_lookup_elem(&xdplb_sample_buf, &zero);
	counters = bpf_map_lookup_elem(&xdplb_sample_stats, &zero);
	if (!cfg || !buf || !counters)
		return;
	len = bpf_xdp_get_buff_len(ctx);
	cap = cfg->snaplen ? cfg->snaplen : XDPLB_SNAP_DEFAULT;
	if (cap > len)
		cap = len;
	if (cap > XDPLB_SNAP_MAX)
		cap = XDPLB_SNAP_MAX;
	/* bpf_xdp_load_bytes takes 1..XDPLB_SNAP_MAX bytes: make that plain
	 * to the verifier whatever the compiler did with the bounds above. */
	asm volatile("" : "+r"(cap));
	if (cap < 1 || cap > XDPLB_SNAP_MAX)
		return;
	if (bpf_xdp_load_bytes(ctx, 0, buf->data, cap))
		return;
	buf->hdr.timestamp = bpf_ktime_get_boot_ns();
	buf->hdr.ifindex = ctx->ingress_ifindex;
	buf->hdr.rx_queue = ctx->rx_queue_index;
	buf->hdr.len = len;
	buf->hdr.cap_len = cap;
	buf->hdr.slot = xdplb_slot;
	buf->hdr.action = action;
	buf->hdr.kind = kind;
	/* Userspace drains on a timer, so no wakeup is needed per record. */
	if (bpf_ringbuf_output(&xdplb_samples, buf, sizeof(buf->hdr) + cap, BPF_RB_NO_WAKEUP)) {
		counters->lost += 1;
		return;
	}
	if (kind == XDPLB_SAMPLE_VERDICT)
		counters->verdicts += 1;
	else
		counters->packets += 1;
}

/* Report a final non-PASS verdict at the interface's verdict rate. Only
 * reached off the PASS path, so PASS pays nothing for it. */
static __always_inline void xdplb_sample_verdict(struct xdp_md *ctx, __u32 action)
{
	struct xdplb_sampling *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&xdplb_sampling, &zero);
	if (cfg && xdplb_one_in(cfg->verdict_rate))
		xdplb_sample(ctx, XDPLB_SAMPLE_VERDICT, action);
}

/* A PASS, in a constant column: no run-time bounds check (see xdplb_add). */
static __always_inline void xdplb_add_pass(struct xdp_md *ctx, struct xdplb_counters *c, __u32 column)
{
	if (c) {
		c->packets[column] += 1;
		c->bytes[column] += ctx->data_end - ctx->data;
	}
}

static __always_inline int xdplb_return(struct xdp_md *ctx, int action)
{
	struct xdplb_counters *c = xdplb_row(xdplb_slot);
	__u32 column = action, later;

	if ((__u32)action > XDP_REDIRECT) {
		column = XDPLB_INVALID_ACTION;
		action = XDP_ABORTED;
	}
	if (action != XDP_PASS) {
		if (c)
			xdplb_add(c, column, ctx->data_end - ctx->data);
		xdplb_sample_verdict(ctx, action);
		return action;
	}
	/* Nothing filled after this slot: one test rather than one per slot
	 * (every taken branch costs here, about half a nanosecond). */
	later = xdplb_later(xdplb_slot + 1);
	if (!later) {
		xdplb_add_pass(ctx, c, XDPLB_FINAL_PASS);
		return XDP_PASS;
	}
	xdplb_add_pass(ctx, c, XDP_PASS);
	xdplb_call(ctx, later);
	/* Every later slot was emptied since the mask was read: the packet
	 * leaves here after all, so it moves to FINAL_PASS. The row is looked
	 * up again so that only ctx lives across the calls: fewer registers to
	 * save on every program's way in and out. */
	c = xdplb_row(xdplb_slot);
	if (c) {
		c->packets[XDP_PASS] -= 1;
		c->bytes[XDP_PASS] -= ctx->data_end - ctx->data;
	}
	xdplb_add_pass(ctx, c, XDPLB_FINAL_PASS);
	return XDP_PASS;
}
#endif

#endif
