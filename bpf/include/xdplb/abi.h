/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The ABI version of everything xdplb pins: the slot protocol's maps and
 * counters, and every subprogram's maps. It changes whenever any pinned
 * layout does. Every pin directory holds a marker with the version it was
 * made by (src/sys/abi... see src/root/abi.ts), and every slot program
 * carries the version it was built against in `xdplb_abi`, so state or
 * programs of another version are refused rather than misread.
 */
#ifndef XDPLB_ABI_H
#define XDPLB_ABI_H

#define XDPLB_ABI_VERSION 2

#endif
