/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* linux/icmp.h drags in libc's socket headers, which a BPF build cannot
 * use: the ICMP names the programs need. */
#ifndef XDPLB_ICMP_H
#define XDPLB_ICMP_H

#include <linux/types.h>

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
	} un;
};
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_FRAG_NEEDED 4

#endif
