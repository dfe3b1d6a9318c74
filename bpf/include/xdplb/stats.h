/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Counter layout shared by the root and every subprogram; mirrored in
 * src/root/stats.ts and checked against BTF by test/kernel/layout.test.ts. */
#ifndef XDPLB_STATS_H
#define XDPLB_STATS_H

#include <linux/types.h>

#define XDPLB_SLOTS 8

/* Rows of the stats map: one per slot, then the root's own fall-through
 * verdicts. The interface totals are not counted: userspace derives them
 * from these rows, so a packet costs one row update. Rows 9..16 belong to
 * userspace alone (what slots 0..7 had counted when their counters last
 * restarted); the kernel never writes them. */
#define XDPLB_ROW_ROOT 8
#define XDPLB_ROWS 17

/* Columns: the five XDP actions in kernel order, then INVALID_ACTION for a
 * verdict outside 0..4 (which the slot protocol turns into XDP_ABORTED),
 * then FINAL_PASS. A verdict is counted once, in one column: a PASS handed
 * on to a later slot under PASS, a PASS that no later slot took (the packet
 * left the dispatcher here) under FINAL_PASS; a non-PASS verdict is always
 * final. A slot's PASS, as shown, is the two together. The root counts its
 * own PASSes, all final, under PASS. */
#define XDPLB_INVALID_ACTION 5
#define XDPLB_FINAL_PASS 6
#define XDPLB_COLUMNS 7

struct xdplb_counters {
	__u64 packets[XDPLB_COLUMNS];
	__u64 bytes[XDPLB_COLUMNS];
};

#endif
