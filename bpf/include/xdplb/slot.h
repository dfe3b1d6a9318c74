/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The slot protocol. The root tail-calls slots 0..7 in order; a subprogram
 * ends with `return xdplb_return(ctx, action);`, which counts the verdict in
 * the subprogram's own slot, hands XDP_PASS on to the later slots and, when
 * nothing later takes the packet or the verdict is final, counts it in the
 * interface totals and returns it.
 *
 * Every object that includes this header declares the same two maps; the
 * loader makes them the interface's pinned ones (bpf_map__reuse_fd) before
 * the program is loaded, so one object file serves any interface and slot.
 */
#ifndef XDPLB_SLOT_H
#define XDPLB_SLOT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "stats.h"

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

static __always_inline void xdplb_count(__u32 row, __u32 column, __u64 bytes)
{
	struct xdplb_counters *c;
	/* Check and index with one 64-bit register: with a verdict known only
	 * at run time, clang otherwise zero-extends a second copy for the index
	 * after the check, and the verifier rejects the unbounded access. */
	__u64 col = column;

	asm volatile("" : "+r"(col));
	if (col >= XDPLB_ACTIONS)
		return;
	c = bpf_map_lookup_elem(&xdplb_stats, &row);
	if (!c)
		return;
	/* Per-CPU value: plain adds, no atomics on the fast path. */
	c->packets[col] += 1;
	c->bytes[col] += bytes;
}

/* Tail-call slots first..7 in order. The keys are constants, so the
 * verifier turns each call into a direct jump; when `first` is itself a
 * load-time constant the calls before it are dead code and pruned. A call
 * into an empty slot falls through to the next one. */
static __always_inline void xdplb_chain(struct xdp_md *ctx, __u32 first)
{
#pragma unroll
	for (__u32 i = 0; i < XDPLB_SLOTS; i++)
		if (i >= first)
			bpf_tail_call(ctx, &xdplb_slots, i);
}

#ifndef XDPLB_ROOT_PROGRAM
/* This program's slot, set by the loader before load. It lives alone in its
 * own section so the loader can write it without parsing BTF. */
const volatile __u32 xdplb_slot SEC(".rodata.xdplb") = 0;

static __always_inline int xdplb_return(struct xdp_md *ctx, int action)
{
	__u32 slot = xdplb_slot;
	__u64 bytes = ctx->data_end - ctx->data;
	__u32 column = action;

	if ((__u32)action > XDP_REDIRECT) {
		column = XDPLB_INVALID_ACTION;
		action = XDP_ABORTED;
	}
	xdplb_count(slot, column, bytes);
	if (action == XDP_PASS)
		xdplb_chain(ctx, slot + 1);
	xdplb_count(XDPLB_ROW_TOTAL, action, bytes);
	return action;
}
#endif

#endif
