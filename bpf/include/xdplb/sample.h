/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Layout of packet and verdict samples, shared by the slot protocol and the
 * sampler; mirrored in src/programs/sampler/layout.ts and checked against
 * BTF by test/kernel/sampler-layout.test.ts. */
#ifndef XDPLB_SAMPLE_H
#define XDPLB_SAMPLE_H

#include <linux/types.h>

/* Bytes of a frame a sample can carry: a 9000-byte jumbo frame and its
 * headers. A larger snaplen captures at most this much. */
#define XDPLB_SNAP_MAX 9216
#define XDPLB_SNAP_DEFAULT 256

/* The interface's ring buffer of samples: 1 MiB, about 3,500 samples of
 * 256 bytes between two drains. */
#define XDPLB_SAMPLE_RING_BYTES (1 << 20)

/* kind of a sample */
#define XDPLB_SAMPLE_PACKET 0  /* taken by the sampler, the packet goes on */
#define XDPLB_SAMPLE_VERDICT 1 /* a final non-PASS verdict of a slot */

/* action of a packet sample: no verdict yet */
#define XDPLB_SAMPLE_NO_ACTION 0xff

/* One ring buffer record: this header, then `cap_len` bytes of the frame. */
struct xdplb_sample {
	__u64 timestamp; /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME */
	__u32 ifindex;
	__u32 rx_queue;
	__u32 len;     /* original frame length, all fragments */
	__u32 cap_len; /* bytes captured after this header */
	__u8 slot;
	__u8 action;
	__u8 kind;
	__u8 pad[5];
};

/* The interface's sampling settings (one entry of xdplb_sampling). */
struct xdplb_sampling {
	__u32 verdict_rate; /* 1 in N final non-PASS verdicts; 0 = off */
	__u32 snaplen;      /* bytes of each frame to capture, 1..65535 */
};

/* Per-CPU sample counters (one entry of xdplb_sample_stats). */
struct xdplb_sample_counters {
	__u64 packets;  /* packet samples written */
	__u64 verdicts; /* verdict samples written */
	__u64 lost;     /* samples not written: the ring buffer was full */
};

#endif
