// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The root: attached to an interface, it tail-calls the filled slots of
 * 0..7 in order. Reaching the end means no slot took the packet (every slot
 * empty): pass and count it. */
#define XDPLB_ROOT_PROGRAM
#include <xdplb/slot.h>

SEC("xdp")
int xdp_root(struct xdp_md *ctx)
{
	__u32 filled = xdplb_slot_mask;
	struct xdplb_counters *c;

	/* Every slot empty: one test rather than one per slot. */
	if (filled)
		xdplb_call(ctx, filled);

	/* Every PASS counted here is final: userspace adds this row's PASS to
	 * the interface totals as it is. */
	c = xdplb_row(XDPLB_ROW_ROOT);
	if (c)
		xdplb_add(c, XDP_PASS, ctx->data_end - ctx->data);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
