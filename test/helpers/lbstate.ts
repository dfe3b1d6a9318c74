// An independent look at the balancer's maps: what they hold, read map by
// map (not through the control plane's reader), with every Maglev table
// compared to the one maglev.ts computes from the backend ids the kernel
// holds, and everything a half-done apply could leave behind listed.
import { BpfMap, closeMaps } from '../../src/libbpf/index.js';
import { NO_BACKEND, maglevTable } from '../../src/programs/lb/maglev.js';
import { vipBits, VIP_BITS_WORDS } from '../../src/programs/lb/vipbits.js';
import { vipName, type LbConfig } from '../../src/programs/lb/config.js';
import {
  LAYOUT, LB_MAX_BACKENDS, LB_MAX_VIPS, SLOT_NONE, decodeBackend, decodeVip, decodeVipKey,
} from '../../src/programs/lb/layout.js';
import type { LbMaps } from '../../src/programs/lb/state.js';
import { LB_MAPS } from '../../src/programs/lb/spec.js';
import { nsPinDir } from './netns.js';

export interface LbView {
  /** By VIP name: table size and live backends, sorted. */
  vips: Record<string, { table_size: number; backends: string[] }>;
  /** Everything that is not as a complete apply leaves it. */
  problems: string[];
}

const backendText = (b: { address: string; port: number; weight: number; mac?: string }) =>
  `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port} weight ${b.weight}${b.mac ? ` mac ${b.mac}` : ''}`;

/** What a kernel holding exactly `config` shows. */
export function configView(config: LbConfig): LbView {
  return {
    vips: Object.fromEntries(config.vips.map((v) => [vipName(v), { table_size: v.table_size, backends: v.backends.map(backendText).sort() }])),
    problems: [],
  };
}

export function kernelView(maps: LbMaps): LbView {
  const problems: string[] = [];
  const vips: LbView['vips'] = {};
  const byId = new Map<number, { name: string; key: Buffer; size: number }>();
  for (const [key, value] of maps.lb_vips.entries()) {
    const { id, tableSize } = decodeVip(value);
    const name = vipName(decodeVipKey(key));
    byId.set(id, { name, key, size: tableSize });
    vips[name] = { table_size: tableSize, backends: [] };
  }
  const raw = maps.lb_backends.values(LB_MAX_BACKENDS);
  const live = new Map<number, Array<{ id: number; key: string; weight: number }>>();
  for (let id = 0; id < LB_MAX_BACKENDS; id++) {
    const b = decodeBackend(raw, id * LAYOUT.lb_backend.size);
    if (!b) continue;
    const vip = byId.get(b.vipId);
    if (!vip) {
      problems.push(`backend ${id} (${b.address}) of VIP id ${b.vipId}, which no VIP has`);
      continue;
    }
    if (b.removed) continue;
    vips[vip.name].backends.push(backendText(b));
    if (!live.has(b.vipId)) live.set(b.vipId, []);
    live.get(b.vipId)!.push({ id, key: `${b.address}:${b.port}`, weight: b.weight });
  }
  for (const v of Object.values(vips)) v.backends.sort();
  const tables = new Map(maps.lb_maglev.entries().map(([k, v]) => [k.readUInt32LE(0), v.readUInt32LE(0)]));
  for (const [id, vip] of byId) {
    const mapId = tables.get(id);
    if (mapId === undefined) {
      problems.push(`VIP ${vip.name} has no table`);
      continue;
    }
    const inner = BpfMap.byId(mapId);
    if (!inner) {
      problems.push(`VIP ${vip.name}: its table was swapped out while read`);
      continue;
    }
    try {
      // Each entry's backend (struct lb_slot's cur; a stateless VIP's
      // entries also name their previous backend, which chaining decides).
      const got = inner.values(inner.maxEntries);
      const want = maglevTable(live.get(id) ?? [], vip.size);
      const cur = Array.from({ length: got.length / 8 }, (_, i) => got.readUInt16LE(i * 8));
      const same = inner.maxEntries === vip.size && want.every((b, i) => cur[i] === (b === NO_BACKEND ? SLOT_NONE : b));
      if (!same) problems.push(`VIP ${vip.name}: its table is not the one its backends make`);
    } finally {
      inner.close();
    }
  }
  for (const id of tables.keys()) if (!byId.has(id)) problems.push(`a table at VIP id ${id}, which no VIP has`);
  const ids = Buffer.alloc(LB_MAX_VIPS * LAYOUT.lb_vip_key.size);
  for (const [id, v] of byId) v.key.copy(ids, id * LAYOUT.lb_vip_key.size);
  if (!maps.lb_vip_ids.values(LB_MAX_VIPS).equals(ids)) problems.push('lb_vip_ids is not the VIPs\' keys by id');
  if (!maps.lb_vip_bits.values(VIP_BITS_WORDS).equals(vipBits([...byId.values()].map((v) => v.key)))) problems.push('lb_vip_bits is not the VIPs\' bits');
  return { vips, problems };
}

const pinDirs = new Map<string, string>();

/** The view of the balancer pinned in network namespace `netns`. */
export function pinnedView(netns: string): LbView {
  if (!pinDirs.has(netns)) pinDirs.set(netns, `${nsPinDir(netns)}/lb`);
  const dir = pinDirs.get(netns)!;
  const maps = Object.fromEntries(LB_MAPS.map((n) => [n, BpfMap.openPinned(`${dir}/${n}`)])) as LbMaps;
  try {
    return kernelView(maps);
  } finally {
    closeMaps(maps);
  }
}
