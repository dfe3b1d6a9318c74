// The sampler on interfaces: its settings applied to placed samplers, the
// rate changed in place, verdict samples turned off on detach, and its
// status read back from the kernel. The interface's sampling settings and
// counters belong to the root array (the slot protocol); the rate is the
// sampler's own.
import type { BpfMap } from '../../libbpf/index.js';
import { findProgram, openPinnedMaps, openRoot, interfaceRecovery, programIfaces, type Placed } from '../../root/place.js';
import { pinnedIfaces, programDir, resolveIface, type Iface } from '../../root/pins.js';
import type { RootArray } from '../../root/array.js';
import {
  CONFIG_MAP, DEFAULT_RATE, DEFAULT_VERDICT_RATE, SAMPLER, readRate, readSampleCounters, readSampling,
  writeRate, writeSampling, type SampleCounters,
} from './config.js';
import { RING_BYTES, SNAP_MAX } from './layout.js';

export interface Settings {
  rate?: number;
  verdictRate?: number;
  snaplen?: number;
}

function withRate<T>(iface: Iface, fn: (rate: BpfMap) => T): T {
  const { rate } = openPinnedMaps(
    programDir(iface, SAMPLER.name), { rate: CONFIG_MAP }, interfaceRecovery(SAMPLER, iface),
    `xdp-sampler is not attached to ${iface.name}: run xdp-sampler --attach --interface ${iface.name} first`,
  );
  try {
    return fn(rate);
  } finally {
    rate.close();
  }
}

function withRoots<T>(ifaces: Iface[], fn: (roots: RootArray[]) => T): T {
  const roots: RootArray[] = [];
  try {
    for (const iface of ifaces) roots.push(openRoot(iface));
    return fn(roots);
  } finally {
    roots.forEach((r) => r.close());
  }
}

/** Apply the settings given to each placed sampler; settings not given keep
 *  their values, or take the defaults where the sampler was just placed. */
export function configureSampler(placed: Array<Pick<Placed, 'iface' | 'changed'>>, settings: Settings): void {
  withRoots(placed.map((p) => p.iface), (roots) => {
    placed.forEach((p, i) => {
      const sampling = roots[i].maps.sampling;
      const current = readSampling(sampling);
      writeSampling(sampling, {
        verdictRate: settings.verdictRate ?? (p.changed ? DEFAULT_VERDICT_RATE : current.verdictRate),
        snaplen: settings.snaplen ?? current.snaplen,
      });
      if (settings.rate !== undefined || p.changed) withRate(p.iface, (m) => writeRate(m, settings.rate ?? DEFAULT_RATE));
    });
  });
}

/** Change the rate (and optionally the interface's verdict rate and snaplen)
 *  of attached samplers: one map update each, nothing reloaded. Every
 *  interface is checked before the first change. */
export function setRate(ifnames: string[], settings: Settings & { rate: number }): void {
  const ifaces = ifnames.map(resolveIface);
  withRoots(ifaces, (roots) => {
    ifaces.forEach((iface) => withRate(iface, () => undefined));
    ifaces.forEach((iface, i) => {
      withRate(iface, (m) => writeRate(m, settings.rate));
      const current = readSampling(roots[i].maps.sampling);
      writeSampling(roots[i].maps.sampling, {
        verdictRate: settings.verdictRate ?? current.verdictRate,
        snaplen: settings.snaplen ?? current.snaplen,
      });
    });
  });
}

/** Verdict samples are for a capture: with the sampler gone nothing asks
 *  for them, so they stop costing the slots anything. */
export function verdictSamplesOff(ifaces: Iface[]): void {
  withRoots(ifaces, (roots) => roots.forEach((root) => {
    writeSampling(root.maps.sampling, { ...readSampling(root.maps.sampling), verdictRate: 0 });
  }));
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

export function samplerStatus(iface: Iface): SamplerStatus {
  return withRoots([iface], ([root]) => {
    const found = findProgram(root, SAMPLER);
    const rate = found ? withRate(iface, readRate) : null;
    const s = readSampling(root.maps.sampling);
    return {
      sampler_loaded: !!found, slot: found?.slot ?? null, id: found?.id ?? null, rate,
      verdict_rate: s.verdictRate, snaplen: s.snaplen, captured_max: Math.min(s.snaplen, SNAP_MAX),
      ring_bytes: RING_BYTES, samples: readSampleCounters(root.maps.sample_stats),
    };
  });
}

/** Status of the named interfaces (an error for one without a root), or of
 *  every interface of this namespace with a root array (verdict samples
 *  are the interface's, with or without the sampler). */
export function status(ifnames?: string[]): Record<string, SamplerStatus> {
  const ifaces = ifnames ? ifnames.map(resolveIface) : pinnedIfaces().filter((p) => !p.gone);
  return Object.fromEntries(ifaces.map((i) => [i.name, samplerStatus(i)]));
}

/** Interfaces running the sampler, with their slots. */
export function samplerIfaces(): string[] {
  return programIfaces(SAMPLER).map((p) => p.iface.name);
}
