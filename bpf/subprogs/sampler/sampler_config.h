/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The sampler's own setting, one entry of its per-interface map
 * sampler_config; mirrored in src/programs/sampler/layout.ts. */
#ifndef XDPLB_SAMPLER_CONFIG_H
#define XDPLB_SAMPLER_CONFIG_H

#include <linux/types.h>

struct xdplb_sampler_config {
	__u32 rate; /* 1 in N packets; 0 = off */
};

#endif
