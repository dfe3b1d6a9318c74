// The balancer's pinned maps (shared by every interface it runs on) and the
// interfaces it runs on, read back from bpffs and the kernel.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, mapInfo, openPinned } from '../../libbpf/index.js';
import { XdplbError } from '../../errors.js';
import { sharedDir, interfaceDir } from '../../root/layout.js';
import { RootArray } from '../../root/array.js';
import { pinnedInterfaces } from '../../root/status.js';
import { findSubprogram } from '../../root/subprogram.js';
import { LB_MAPS, LB_SPEC } from './spec.js';
import type { LbFds } from './state.js';
import { MAP_SIZES } from './layout.js';

/** The pinned maps, or null when the balancer runs nowhere. State pinned by
 *  another version of the balancer, whose maps the program would misread,
 *  is refused: each map's key and value size and flags must match. */
export function openLbMaps(): LbFds | null {
  const dir = sharedDir(LB_SPEC.name);
  if (!existsSync(dir)) return null;
  const fds: Partial<LbFds> = {};
  try {
    for (const name of LB_MAPS) {
      const fd = openPinned(join(dir, name));
      if (fd === null) throw new XdplbError(`incomplete load balancer pins in ${dir}: ${name} is missing; run xdp-lb --detach on every interface to clean up`);
      fds[name] = fd;
      const info = mapInfo(fd);
      const [key, value, flags] = MAP_SIZES[name];
      if (info.keySize !== key || info.valueSize !== value || info.flags !== flags) {
        throw new XdplbError(
          `the load balancer state pinned in ${dir} is from another version: map ${name} has ` +
            `key/value sizes ${info.keySize}/${info.valueSize} and flags ${info.flags}, expected ${key}/${value} and ${flags}; ` +
            'run xdp-lb --detach on every interface (its config goes with it) and attach again',
        );
      }
    }
  } catch (err) {
    Object.values(fds).forEach(closeFd);
    throw err;
  }
  return fds as LbFds;
}

/** Refuse state pinned by another version before attaching over it. */
export function checkPinnedLayout(): void {
  const fds = openLbMaps();
  if (fds) closeLbMaps(fds);
}

export function requireLbMaps(): LbFds {
  const fds = openLbMaps();
  if (!fds) throw new XdplbError('xdp-lb is not attached to any interface: run xdp-lb --attach --interface IFNAME first');
  return fds;
}

export function closeLbMaps(fds: LbFds): void {
  Object.values(fds).forEach(closeFd);
}

/** Interfaces whose root array holds the balancer, and where. */
export function lbInterfaces(only?: string[]): Record<string, { slot: number; id: number }> {
  const out: Record<string, { slot: number; id: number }> = {};
  for (const ifname of only ?? pinnedInterfaces()) {
    const root = RootArray.openPinned(interfaceDir(ifname));
    if (!root) continue;
    try {
      const found = findSubprogram(root, LB_SPEC);
      if (found) out[ifname] = found;
    } finally {
      root.close();
    }
  }
  return out;
}
