// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The sampler: 1 in N packets, at random, go into the interface's ring
 * buffer of samples (header and the first snaplen bytes, see
 * <xdplb/sample.h>). It changes nothing and passes every packet on. */
#include <xdplb/slot.h>
#include <xdplb/sampler_config.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdplb_sampler_config);
} sampler_config SEC(".maps");

SEC("xdp")
int xdp_sampler(struct xdp_md *ctx)
{
	struct xdplb_sampler_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&sampler_config, &zero);
	if (cfg && xdplb_one_in(cfg->rate))
		xdplb_sample(ctx, XDPLB_SAMPLE_PACKET, XDPLB_SAMPLE_NO_ACTION);
	return xdplb_return(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
