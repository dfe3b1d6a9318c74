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

/* The unfolded sum of `n` 32-bit words at p, `n` a literal (a macro, so
 * the loop's count is known where it is written and it unrolls whole: no
 * bounds to check but the caller's). Folds to the sum of their 16-bit
 * words. */
#define xdplb_sum32(p, n)                                             \
	({                                                            \
		const __u32 *w_ = (const void *)(p);                  \
		__u64 s_ = 0;                                         \
		_Pragma("unroll") for (int i_ = 0; i_ < (n); i_++)    \
			s_ += w_[i_];                                 \
		s_;                                                   \
	})

/* Whether an IPv4 header's checksum holds (its words sum to 0xffff). The
 * common 20-byte header is summed as five 32-bit words, no loop: the
 * balancer checks every packet it forwards. */
static __always_inline int xdplb_ipv4_csum_ok(const void *ip, __u32 ihl, const void *end)
{
	if (ihl == 5 && ip + 20 <= end)
		return xdplb_csum_fold(xdplb_sum32(ip, 5)) == 0;
	return xdplb_csum_fold(xdplb_csum_words(ip, ihl * 2, end)) == 0;
}

/* Longest span xdplb_csum_bytes() sums: a frame without fragments (XDP's
 * page) and then some. */
#define XDPLB_CSUM_TAIL_MAX 4096

/* One's complement sum (unfolded) of `len` bytes from p, or of those up to
 * end if fewer, at most XDPLB_CSUM_TAIL_MAX of them, as 16-bit words in
 * memory order (a trailing odd byte padded with zero). Eight bytes a step:
 * their two 32-bit halves fold to the same sum as their four 16-bit words. */
static __always_inline __u64 xdplb_csum_bytes(void *p, void *end, __u32 len)
{
	__u64 sum = 0;

	for (int i = 0; i < XDPLB_CSUM_TAIL_MAX / 8; i++) {
		__u64 v;

		if (len < 8 || p + 8 > end)
			break;
		v = *(__u64 *)p;
		sum += (v & 0xffffffff) + (v >> 32);
		p += 8;
		len -= 8;
	}
	for (int i = 0; i < 3; i++) {
		if (len < 2 || p + 2 > end)
			break;
		sum += *(__u16 *)p;
		p += 2;
		len -= 2;
	}
	if (len && p + 1 <= end)
		sum += *(__u8 *)p;
	return sum;
}

#endif
