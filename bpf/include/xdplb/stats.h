/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Counter layout shared by the root and every subprogram; mirrored in
 * src/root/stats.ts and checked against BTF by test/kernel/layout.test.ts. */
#ifndef XDPLB_STATS_H
#define XDPLB_STATS_H

#include <linux/types.h>

#define XDPLB_SLOTS 8

/* Rows of the stats map: one per slot, then the root's own fall-through
 * verdicts, then the interface totals (what the kernel finally did). */
#define XDPLB_ROW_ROOT 8
#define XDPLB_ROW_TOTAL 9
#define XDPLB_ROWS 10

/* Columns: the five XDP actions in kernel order, then INVALID_ACTION for a
 * verdict outside 0..4 (which the slot protocol turns into XDP_ABORTED). */
#define XDPLB_INVALID_ACTION 5
#define XDPLB_ACTIONS 6

struct xdplb_counters {
	__u64 packets[XDPLB_ACTIONS];
	__u64 bytes[XDPLB_ACTIONS];
};

#endif
