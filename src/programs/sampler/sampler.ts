// The sampler on interfaces: attach it to a slot with its settings, change
// the rate in place, detach it, and read its status back from the kernel.
// Every request is checked for all interfaces before anything changes.
import { closeFd } from '../../libbpf/index.js';
import { interfaceIndex } from '../../net/interface.js';
import { pinnedInterfaces } from '../../root/status.js';
import { requireRoot } from '../../root/slot.js';
import { attachSubprogram, detachSubprogram, findSubprogram, openSubprogramMap } from '../../root/subprogram.js';
import type { RootArray } from '../../root/array.js';
import {
  CONFIG_MAP, DEFAULT_RATE, DEFAULT_VERDICT_RATE, SAMPLER, readRate, readSampleCounters, readSampling,
  writeRate, writeSampling, type SampleCounters, type Sampling,
} from './config.js';
import { RING_BYTES, SNAP_MAX } from './layout.js';

export interface Settings {
  rate?: number;
  verdictRate?: number;
  snaplen?: number;
}

/** Open each interface's root, insisting on the sample maps; closes them all
 *  after `fn`. Unknown interfaces and missing roots fail here, first. */
function withRoots<T>(
  ifnames: string[], fn: (roots: Array<{ ifname: string; root: RootArray }>) => T, needDevice = true,
): T {
  const roots: Array<{ ifname: string; root: RootArray }> = [];
  try {
    for (const ifname of ifnames) {
      if (needDevice) interfaceIndex(ifname);
      const root = requireRoot(ifname);
      roots.push({ ifname, root });
      root.sampleMaps(ifname);
    }
    return fn(roots);
  } finally {
    roots.forEach(({ root }) => root.close());
  }
}

export interface AttachResult {
  ifname: string;
  slot: number;
  id: number;
  changed: boolean;
}

/** Put the sampler into `slot` (by default the slot it is in, else slot 1)
 *  and apply the settings given; settings not given keep their values
 *  (defaults on a first attach). */
export function attachSampler(ifnames: string[], slot: number | undefined, settings: Settings): AttachResult[] {
  return withRoots(ifnames, (roots) => {
    const done: AttachResult[] = [];
    try {
      for (const { ifname, root } of roots) {
        const r = attachSubprogram(ifname, SAMPLER, slot ?? findSubprogram(root, SAMPLER)?.slot ?? SAMPLER.defaultSlot);
        done.push(r);
        const maps = root.sampleMaps(ifname);
        const current = readSampling(maps.sampling);
        writeSampling(maps.sampling, {
          verdictRate: settings.verdictRate ?? (r.changed ? DEFAULT_VERDICT_RATE : current.verdictRate),
          snaplen: settings.snaplen ?? current.snaplen,
        });
        const fd = openSubprogramMap(ifname, SAMPLER, CONFIG_MAP);
        try {
          if (settings.rate !== undefined || r.changed) writeRate(fd, settings.rate ?? DEFAULT_RATE);
        } finally {
          closeFd(fd);
        }
      }
    } catch (err) {
      for (const r of done) if (r.changed) detachOne(r.ifname);
      throw err;
    }
    return done;
  });
}

/** Change the rate (and optionally the interface's verdict rate and snaplen)
 *  of an attached sampler: atomic map updates, nothing reloaded. */
export function setRate(ifnames: string[], settings: Settings & { rate: number }): void {
  withRoots(ifnames, (roots) => {
    const fds = roots.map(({ ifname }) => openSubprogramMap(ifname, SAMPLER, CONFIG_MAP));
    try {
      roots.forEach(({ ifname, root }, i) => {
        writeRate(fds[i], settings.rate);
        const maps = root.sampleMaps(ifname);
        const current = readSampling(maps.sampling);
        writeSampling(maps.sampling, {
          verdictRate: settings.verdictRate ?? current.verdictRate,
          snaplen: settings.snaplen ?? current.snaplen,
        });
      });
    } finally {
      fds.forEach(closeFd);
    }
  });
}

function detachOne(ifname: string): boolean {
  const removed = detachSubprogram(ifname, SAMPLER);
  // Verdict samples are for a capture; with the sampler gone nothing asks
  // for them, so they stop costing the slots anything.
  const root = requireRoot(ifname);
  try {
    if (root.sampleFds) {
      const current = readSampling(root.sampleFds.sampling);
      writeSampling(root.sampleFds.sampling, { ...current, verdictRate: 0 });
    }
  } finally {
    root.close();
  }
  return removed;
}

/** Take the sampler out and turn verdict samples off; false where it was not attached. */
export function detachSampler(ifnames: string[]): Array<{ ifname: string; changed: boolean }> {
  for (const ifname of ifnames) {
    interfaceIndex(ifname);
    requireRoot(ifname).close();
  }
  return ifnames.map((ifname) => ({ ifname, changed: detachOne(ifname) }));
}

export interface SamplerStatus {
  sampler_loaded: boolean;
  slot: number | null;
  id: number | null;
  /** 1 in N packets; null when the sampler is not attached. */
  rate: number | null;
  verdict_rate: number;
  snaplen: number;
  /** Bytes a sample carries at most: min(snaplen, SNAP_MAX). */
  captured_max: number;
  ring_bytes: number;
  samples: SampleCounters;
}

export function samplerStatus(ifname: string): SamplerStatus {
  return withRoots([ifname], ([{ root }]) => {
    const maps = root.sampleMaps(ifname);
    const found = findSubprogram(root, SAMPLER);
    let rate: number | null = null;
    if (found) {
      const fd = openSubprogramMap(ifname, SAMPLER, CONFIG_MAP);
      try {
        rate = readRate(fd);
      } finally {
        closeFd(fd);
      }
    }
    const s: Sampling = readSampling(maps.sampling);
    return {
      sampler_loaded: !!found, slot: found?.slot ?? null, id: found?.id ?? null, rate,
      verdict_rate: s.verdictRate, snaplen: s.snaplen, captured_max: Math.min(s.snaplen, SNAP_MAX),
      ring_bytes: RING_BYTES, samples: readSampleCounters(maps.sample_stats),
    };
  }, false);
}

/** Status of the named interfaces (an error for one without a root), or of
 *  every interface with pinned root: read from the pins, so also for a
 *  device in another namespace; one whose pins cannot serve says why. */
export function status(ifnames?: string[]): Record<string, SamplerStatus | { error: string }> {
  if (ifnames) return Object.fromEntries(ifnames.map((n) => [n, samplerStatus(n)]));
  return Object.fromEntries(pinnedInterfaces().map((n) => {
    try {
      return [n, samplerStatus(n)];
    } catch (err) {
      return [n, { error: err instanceof Error ? err.message : String(err) }];
    }
  }));
}
