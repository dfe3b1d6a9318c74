/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Internet checksums: full sums for headers built in place, and RFC 1624
 * incremental updates for rewritten fields. */
#ifndef XDPLB_CSUM_H
#define XDPLB_CSUM_H

#include <linux/types.h>

static __always_inline __u16 xdplb_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field. */
static __always_inline void xdplb_csum_replace2(__sum16 *check, __be16 old, __be16 new)
{
	__u32 sum = (__u16)~*check + (__u16)~old + (__u16)new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	*check = ~sum & 0xffff;
}

/* The same for a 32-bit field (an IPv4 address), as two 16-bit halves. */
static __always_inline void xdplb_csum_replace4(__sum16 *check, __be32 old, __be32 new)
{
	xdplb_csum_replace2(check, (__be16)(old & 0xffff), (__be16)(new & 0xffff));
	xdplb_csum_replace2(check, (__be16)(old >> 16), (__be16)(new >> 16));
}

/* Sum of the 16-bit words of a header of at most 60 bytes (an IPv4 header
 * with options), for checksums computed from scratch. A bounded loop: the
 * verifier checks every iteration's bounds. */
static __always_inline __u64 xdplb_csum_words(const __u16 *p, int words, const void *end)
{
	__u64 sum = 0;

	for (int i = 0; i < 30; i++) {
		if (i >= words || (const void *)(p + i + 1) > end)
			break;
		sum += p[i];
	}
	return sum;
}

#endif
