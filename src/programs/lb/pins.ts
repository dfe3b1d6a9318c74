// The balancer's state (VIPs, backends, tables, connections, NAT ports,
// counters): pinned once per network namespace and shared by every
// interface of that namespace the balancer runs on. It outlives the
// balancer's processes and its detach from the last interface (a restarted
// balancer adopts it, and no connection is reset); only --purge removes it.
import { existsSync } from 'node:fs';
import { closeMaps } from '../../libbpf/index.js';
import { XdplbError } from '../../errors.js';
import { withDirLock } from '../../sys/lock.js';
import { openPinnedMaps, programIfaces, sharedRecovery } from '../../root/place.js';
import { removePins } from '../../root/array.js';
import { pruneNamespaceDir, sharedDir } from '../../root/pins.js';
import { LB_MAPS, LB_SPEC, type LbMapName } from './spec.js';
import type { LbMaps } from './state.js';

const NAMES = Object.fromEntries(LB_MAPS.map((n) => [n, n])) as Record<LbMapName, string>;

export function lbDir(): string {
  return sharedDir(LB_SPEC.name);
}

/** The namespace's pinned maps, or null when the balancer never ran here
 *  (or was purged). State another ABI pinned is refused untouched. */
export function openLbMaps(): LbMaps | null {
  const dir = lbDir();
  if (!existsSync(dir)) return null;
  return openPinnedMaps(dir, NAMES, sharedRecovery(LB_SPEC), `incomplete load balancer state in ${dir}: ${sharedRecovery(LB_SPEC)}`);
}

export function requireLbMaps(): LbMaps {
  const maps = openLbMaps();
  if (!maps) {
    throw new XdplbError('the load balancer has no state in this network namespace: run xdp-lb --attach --interface IFNAME first');
  }
  return maps;
}

export function closeLbMaps(maps: LbMaps): void {
  closeMaps(maps);
}

/** Run `fn` on the namespace's balancer state under its lock: applies are
 *  serialized, so two at once end in one config or the other, never in a
 *  mix of both. */
export function withLbState<T>(fn: (maps: LbMaps) => T): T {
  const maps = requireLbMaps();
  try {
    return withDirLock(lbDir(), () => fn(maps));
  } finally {
    closeLbMaps(maps);
  }
}

/** Interfaces of this namespace whose root array holds the balancer, and where. */
export function lbInterfaces(only?: string[]): Record<string, { slot: number; id: number }> {
  const out: Record<string, { slot: number; id: number }> = {};
  for (const p of programIfaces(LB_SPEC)) {
    if (!only || only.includes(p.iface.name)) out[p.iface.name] = { slot: p.slot, id: p.id };
  }
  return out;
}

/** Remove the namespace's balancer state: its connections and NAT ports
 *  go with it. Refused while the balancer is attached anywhere here. */
export function purgeLbState(): boolean {
  const where = Object.keys(lbInterfaces());
  if (where.length) {
    throw new XdplbError(`the load balancer is attached to ${where.join(', ')}: run xdp-lb --detach --interface ${where.join(',')} first, then --purge`);
  }
  const dir = lbDir();
  if (!existsSync(dir)) return false;
  withDirLock(dir, () => removePins(dir));
  pruneNamespaceDir();
  return true;
}
