// Applying configs to the balancer's maps in the kernel, checked with an
// independent reader (test/helpers/lbstate.ts): an apply cut short after
// any of its writes, or a table written over by hand, is repaired by the
// next apply of the same config.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfMap, MAP_F, MAP_TYPE, closeFd } from '../../src/libbpf/index.js';
import { RootArray } from '../../src/root/array.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { validateConfig, type LbConfig } from '../../src/programs/lb/config.js';
import { kernelHz } from '../../src/programs/lb/clock.js';
import { u32 } from '../../src/programs/lb/layout.js';
import { applyConfig, executePlan } from '../../src/programs/lb/apply.js';
import { planApply } from '../../src/programs/lb/plan.js';
import { readState, type LbMaps } from '../../src/programs/lb/state.js';
import { BPF } from '../helpers/cli.js';
import { uniqueTag } from '../helpers/netns.js';
import { closeLb, enterLabNamespace, lbMapsOf } from '../helpers/lb.js';
import { configView, kernelView } from '../helpers/lbstate.js';

const SLOT = 7;
let leave: () => void;
beforeAll(() => {
  leave = enterLabNamespace(`xla-${uniqueTag()}`, [['link', 'set', 'lo', 'up']]);
});
afterAll(() => leave?.());

let root: RootArray;
let fds: LbMaps;
beforeEach(() => {
  root = RootArray.load();
  const fd = loadSlotProgram(root, { object: BPF('xdp_lb.o'), program: 'xdp_lb', slot: SLOT });
  try {
    root.fill(SLOT, fd);
    fds = lbMapsOf(fd);
  } finally {
    closeFd(fd);
  }
});
afterEach(() => {
  if (fds) closeLb(fds);
  root?.close();
});

const NAT = { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' };
const A = { address: '10.0.0.10', port: 80, protocol: 'tcp' };
const B = { address: 'fd00::10', port: 53, protocol: 'udp' };
const C = { address: '10.0.0.11', port: 80, protocol: 'tcp' };
const cfg = (...vips: unknown[]): LbConfig => validateConfig({ nat: NAT, vips });
const be = (...addrs: Array<string | [string, number]>) => addrs.map((a) => (typeof a === 'string' ? { address: a } : { address: a[0], weight: a[1] }));
const zero = { vips_added: 0, vips_removed: 0, vips_changed: 0, tables_written: 0, backends_written: 0 };

/** The kernel holds exactly `config`, and applying it again writes nothing. */
function expectHolds(config: LbConfig): void {
  expect(kernelView(fds)).toEqual(configView(config));
  expect(applyConfig(fds, config)).toEqual(zero);
}

describe('load balancer apply, repaired', () => {
  it('rebuilds a table written over by hand, though every backend entry is right', () => {
    const c = cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3') }, { ...B, backends: be('fd00::2') });
    applyConfig(fds, c);
    // Every entry of VIP 0's table pointing at one backend: still a valid
    // table, only not the one its backends make.
    const wrong = BpfMap.create(MAP_TYPE.ARRAY, 'lb_table', 4, 4, 65537, MAP_F.INNER_MAP | MAP_F.MMAPABLE);
    try {
      wrong.writeMapped(Buffer.alloc(65537 * 4), 65537);
      fds.lb_maglev.update(0, u32(wrong.fd));
    } finally {
      wrong.close();
    }
    expect(kernelView(fds).problems).toEqual(['VIP tcp:10.0.0.10:80: its table is not the one its backends make']);
    expect(applyConfig(fds, c)).toEqual({ ...zero, vips_changed: 1, tables_written: 1 });
    expectHolds(c);
  });

  // From each config to the next, cut short after each of its writes in
  // turn: the next apply of the target, or of the config before, repairs.
  const steps: LbConfig[] = [
    cfg({ ...A, backends: be('10.0.0.2', '10.0.0.3', '10.0.0.4') }, { ...B, backends: be('fd00::2') }),
    cfg({ ...A, table_size: 7, backends: be('10.0.0.2', ['10.0.0.4', 3], '10.0.0.5') }, { ...C, backends: be('10.0.0.6', '10.0.0.7') }),
    cfg({ ...C, table_size: 131071, backends: be('10.0.0.7', ['10.0.0.8', 0]) }, { ...A, backends: be('10.0.0.3', '10.0.0.2') }),
    cfg(),
    cfg({ ...B, backends: be('fd00::2', 'fd00::3') }),
  ];
  for (let i = 1; i < steps.length; i++) {
    for (const repairWith of ['target', 'previous'] as const) {
      it(`repairs every cut-short apply from config ${i - 1} to ${i} by applying the ${repairWith} config`, () => {
        const from = steps[i - 1];
        const to = steps[i];
        const again = repairWith === 'target' ? to : from;
        applyConfig(fds, from);
        const n = planApply(readState(fds), to, { hz: kernelHz() }).steps.length;
        expect(n).toBeGreaterThan(2);
        for (let cut = 0; cut < n; cut++) {
          applyConfig(fds, from);
          const plan = planApply(readState(fds), to, { hz: kernelHz() });
          executePlan(fds, { ...plan, steps: plan.steps.slice(0, cut) });
          applyConfig(fds, again);
          expect([cut, kernelView(fds)]).toEqual([cut, configView(again)]);
          expect([cut, applyConfig(fds, again)]).toEqual([cut, zero]);
        }
      });
    }
  }
});
