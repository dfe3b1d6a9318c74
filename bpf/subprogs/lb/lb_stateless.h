/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Stateless VIPs: no connection table. Every packet is looked up in its
 * VIP's table by the flow's hash and sent (GUE) to the entry's backend;
 * when the entry changed within the VIP's chaining window it also names
 * the backend before, which goes into the GUE header, and the backend's
 * decapsulator sends a segment it has no socket for on to that one
 * (bpf/subprogs/decap/). The same packet and the same table give the
 * same bytes on every balancer: nothing per flow, nothing per balancer.
 *
 * Finding the VIP costs inline array reads only: lb_vip_index by the
 * VIP bit's index, the key compared in lb_vip_ids, the forwarding in
 * lb_vip_fwd. The entry's index is the flow's hash scaled to the table's
 * size by a multiplication (Lemire's fastrange), the size read from the
 * table map itself (CO-RE, the kernel's struct bpf_map), so that a table
 * and its size are always one object, swapped at once.
 */
#ifndef XDPLB_LB_STATELESS_H
#define XDPLB_LB_STATELESS_H

#include "lb_maps.h"
#include "lb_fib.h"

/* The one field of the kernel's map read here; its offset comes from the
 * running kernel's BTF when the program is loaded. */
struct bpf_map {
	__u32 max_entries;
} __attribute__((preserve_access_index));

/* Entry `hash` (scaled to the table's size) of VIP `vip_id`'s table. */
static __always_inline struct lb_slot *lb_slot_at(__u32 vip_id, __u32 hash)
{
	struct bpf_map *table = bpf_map_lookup_elem(&lb_maglev, &vip_id);
	__u32 index;

	if (!table)
		return NULL;
	index = ((__u64)hash * table->max_entries) >> 32;
	return bpf_map_lookup_elem(table, &index);
}

/* The id of the stateless VIP `f` may go to, by its VIP bit's index
 * `bit`; -1 when lb_vip_index names none, or one that is not the packet's
 * (a VIP being added or removed). Its forwarding still has to say
 * stateless. */
static __always_inline int lb_stateless_id(const struct lb_flow *f, int bit)
{
	struct lb_vip_key *key;
	__u32 k = bit, id, *ix;

	ix = bpf_map_lookup_elem(&lb_vip_index, &k);
	if (!ix || !*ix)
		return -1;
	id = *ix - 1;
	key = bpf_map_lookup_elem(&lb_vip_ids, &id);
	if (!key || !lb_addr_eq(&key->addr, &f->dst) || key->port != f->dport || key->proto != f->proto ||
	    key->family != f->family)
		return -1;
	return id;
}

/* Backend `id` of VIP `vip_id` as an entry names it: in use, that VIP's;
 * `removed` says whether a removed one will do (a previous backend may
 * have been removed: its flows are what chaining is for). */
static __always_inline struct lb_backend *lb_slot_backend(__u32 id, __u32 vip_id, int removed)
{
	struct lb_backend *be = bpf_map_lookup_elem(&lb_backends, &id);

	if (!be || !(be->flags & LB_BACKEND_IN_USE) || be->vip_id != vip_id)
		return NULL;
	if (!removed && (be->flags & LB_BACKEND_REMOVED))
		return NULL;
	return be;
}

#endif
