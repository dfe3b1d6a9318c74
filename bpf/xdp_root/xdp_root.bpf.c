// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The root: attached to an interface, it tail-calls slots 0..7 in order.
 * Reaching the end means every slot is empty: pass and count it. */
#define XDPLB_ROOT_PROGRAM
#include <xdplb/slot.h>

SEC("xdp")
int xdp_root(struct xdp_md *ctx)
{
	__u64 bytes;

	xdplb_chain(ctx, 0);

	bytes = ctx->data_end - ctx->data;
	xdplb_count(XDPLB_ROW_ROOT, XDP_PASS, bytes);
	xdplb_count(XDPLB_ROW_TOTAL, XDP_PASS, bytes);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
