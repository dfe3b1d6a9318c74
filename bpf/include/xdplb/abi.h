/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The ABI version of everything xdplb pins: the slot protocol's maps and
 * counters, and every subprogram's maps. It changes whenever any pinned
 * layout does. Every pin directory holds a marker with the version it was
 * made by (src/root/pins.ts), and every slot program carries the version it
 * was built against in `xdplb_self`, so state or programs of another version
 * are refused rather than misread. ABI_VERSION in src/version.ts is the same
 * number.
 */
#ifndef XDPLB_ABI_H
#define XDPLB_ABI_H

#define XDPLB_ABI_VERSION 4

#endif
