// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The sampler: 1 in N packets, at random, go into the interface's ring
 * buffer of samples (header and the first snaplen bytes, see
 * <xdplb/sample.h>). It changes nothing and passes every packet on. */
#include <xdplb/slot.h>
#include "sampler_config.h"

/* The rate, a global alone in its section: libbpf makes that a one-entry
 * array map (pinned per interface as sampler/sampler_config), and every
 * packet reads it with one load instead of a map lookup, about 1 ns less at
 * rate 0. */
struct xdplb_sampler_config sampler_config SEC(".data.sampler_config") = { 0 };

SEC("xdp")
int xdp_sampler(struct xdp_md *ctx)
{
	if (xdplb_one_in(sampler_config.rate))
		xdplb_sample(ctx, XDPLB_SAMPLE_PACKET, XDPLB_SAMPLE_NO_ACTION);
	return xdplb_return(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
