// One ABI version guards everything pinned: every object carries the number
// it was built against, every pin directory a marker of the ABI that made
// it. State of another ABI is refused, for the root and for every
// subprogram of the registry, with the way out spelled out, and left
// exactly as it was.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BpfMap, BpfObject } from '../../src/libbpf/index.js';
import { XdplbError } from '../../src/errors.js';
import { RootArray } from '../../src/root/array.js';
import { attach } from '../../src/root/attach.js';
import { findProgram, placeProgram } from '../../src/root/place.js';
import { ifaceDir, programDir, sharedDir } from '../../src/root/pins.js';
import { SUBPROGRAMS } from '../../src/programs/index.js';
import { ABI_VERSION } from '../../src/version.js';
import { BPF } from '../helpers/cli.js';
import { pinnedRoot, type PinnedRoot } from '../helpers/pinned.js';

/** Make a directory's marker say another ABI made it. */
function markAsAbi(dir: string, abi: number): void {
  const marker = BpfMap.openPinned(join(dir, 'abi'))!;
  try {
    const v = marker.lookup(0)!;
    v.writeUInt32LE(abi, 0);
    marker.update(0, v);
  } finally {
    marker.close();
  }
}

/** Every file under a directory, with the id of each map pinned there. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => {
      const path = join(e.parentPath, e.name);
      let id = '';
      try {
        const m = BpfMap.openPinned(path);
        if (m) {
          id = String(m.id);
          m.close();
        }
      } catch {
        // a program or link pin
      }
      return `${path}#${id}`;
    })
    .sort();
}

describe('objects carry the ABI they were built against', () => {
  for (const object of ['xdp_fixtures.o', ...SUBPROGRAMS.map((s) => s.object)]) {
    it(object, () => {
      const obj = BpfObject.open(BPF(object));
      try {
        expect(obj.data('.rodata.xdplb')!.readUInt32LE(4)).toBe(ABI_VERSION);
      } finally {
        obj.close();
      }
    });
  }
});

describe('state pinned by another ABI', () => {
  let pinned: PinnedRoot;
  beforeEach(() => {
    pinned = pinnedRoot();
  });
  afterEach(() => pinned.close());

  it('the root array: refused by attach and open, untouched', () => {
    const dir = ifaceDir(pinned.iface);
    markAsAbi(dir, ABI_VERSION + 1);
    const before = tree(dir);
    const message = `the state pinned in ${dir} was made by ABI ${ABI_VERSION + 1}, not ABI ${ABI_VERSION}: ` +
      `run xdp-root --detach --interface ${pinned.iface.name} and --attach again`;
    expect(() => RootArray.openPinned(dir, pinned.iface.name)).toThrow(new XdplbError(message));
    expect(() => attach([pinned.iface.name], 'skb')).toThrow(new XdplbError(message));
    expect(tree(dir)).toEqual(before);
    markAsAbi(dir, ABI_VERSION);
  });

  for (const sub of SUBPROGRAMS) {
    it(`${sub.name}: refused when placed again over it, untouched`, () => {
      const { iface, root } = pinned;
      placeProgram(sub, [iface], sub.defaultSlot);
      // Out of its slot, as xdp-root --unload would leave it: its maps stay.
      root.empty(findProgram(root, sub)!.slot);
      const dirs = [
        ...(sub.interfaceMaps.length ? [{ dir: programDir(iface, sub.name), how: `run xdp-${sub.name} --detach --interface ${iface.name} and --attach again` }] : []),
        ...(sub.sharedMaps?.length ? [{ dir: sharedDir(sub.name), how: `run xdp-${sub.name} --detach on every interface and xdp-${sub.name} --purge (its state goes with it), then attach again` }] : []),
      ];
      expect(dirs.length).toBeGreaterThan(0);
      for (const { dir, how } of dirs) {
        markAsAbi(dir, 1);
        const before = tree(dir);
        expect(() => placeProgram(sub, [iface], sub.defaultSlot)).toThrow(
          new XdplbError(`the state pinned in ${dir} was made by ABI 1, not ABI ${ABI_VERSION}: ${how}`),
        );
        expect(tree(dir)).toEqual(before);
        expect(root.slotIds()[sub.defaultSlot]).toBe(0);
        markAsAbi(dir, ABI_VERSION);
      }
    });
  }
});
