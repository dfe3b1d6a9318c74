// Applying configs to the balancer's maps in the kernel, checked with an
// independent reader (test/helpers/lbstate.ts): an apply cut short after
// any of its writes, or a table written over by hand, is repaired by the
// next apply of the same config; removed backends' ids are taken again once
// no flow uses them, and not before.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfMap, MAP_F, MAP_TYPE, testRun } from '../../src/libbpf/index.js';
import { ifNameToIndex } from '../../src/sys/netdev.js';
import { RootArray } from '../../src/root/array.js';
import { validateConfig, type LbConfig } from '../../src/programs/lb/config.js';
import { kernelHz } from '../../src/programs/lb/clock.js';
import { u32 } from '../../src/programs/lb/layout.js';
import { applyConfig, executePlan } from '../../src/programs/lb/apply.js';
import { planApply } from '../../src/programs/lb/plan.js';
import { readState, type LbMaps } from '../../src/programs/lb/state.js';
import { uniqueTag } from '../helpers/netns.js';
import { TCP, enterLabNamespace, frame, parseFrame, sysctlIn, loadLb, type LbInstance } from '../helpers/lb.js';
import { configView, kernelView } from '../helpers/lbstate.js';

const SLOT = 7;
const XDP = { TX: 3 };
const LB_MAC = '02:00:00:00:00:10';
let leave: () => void;
let ifA = 0;
beforeAll(() => {
  const ns = `xla-${uniqueTag()}`;
  leave = enterLabNamespace(ns, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ...['lbA', 'lbAp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', '10.0.0.10/24', 'dev', 'lbA'],
    ['neigh', 'replace', '10.0.0.1', 'lladdr', '02:00:00:00:00:01', 'dev', 'lbA', 'nud', 'permanent'],
    ['neigh', 'replace', '10.0.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'lbA', 'nud', 'permanent'],
  ]);
  sysctlIn(ns, 'net.ipv4.conf.all.forwarding', '1');
  ifA = ifNameToIndex('lbA');
});
afterAll(() => leave?.());

let lb: LbInstance | undefined;
let root: RootArray;
let fds: LbMaps;
beforeEach(() => {
  lb = loadLb(SLOT);
  ({ root, fds } = lb);
});
afterEach(() => lb?.close());

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
    const wrong = BpfMap.create(MAP_TYPE.ARRAY, 'lb_table', 4, 8, 65537, MAP_F.INNER_MAP | MAP_F.MMAPABLE);
    try {
      wrong.writeMapped(Buffer.alloc(65537 * 8), 65537);
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

describe('load balancer apply, room for backends', () => {
  /** 1000 backends no earlier call named. */
  const thousand = (round: number) => Array.from({ length: 1000 }, (_, i) => ({ address: `10.${100 + round}.${i >> 8}.${i & 255}` }));
  const flow = (flags: number) => testRun(root.rootFd, frame({
    src: '10.0.0.1', dst: '10.0.0.10', sport: 40000, dport: 80, proto: 'tcp', flags, dstMac: LB_MAC, srcMac: '02:00:00:00:00:01',
  }), 1, ifA);

  it('takes removed backends\' ids once no flow uses them: 20 applies of 1000 new backends, one removed backend\'s flow kept', () => {
    applyConfig(fds, cfg({ ...A, backends: be('10.0.0.2') }));
    const syn = flow(TCP.SYN);
    expect(syn.retval).toBe(XDP.TX);
    const { dst, sport } = parseFrame(syn.data);
    expect(dst).toBe('10.0.0.2');
    // 16 rounds fill the 16384 ids with the removed backends of earlier
    // rounds; every round after needs the ids of removed backends.
    for (let round = 0; round < 20; round++) {
      const c = cfg({ ...A, backends: thousand(round) });
      expect(applyConfig(fds, c)).toMatchObject({ tables_written: 1, backends_written: 2000 - (round ? 0 : 999) });
      expect(kernelView(fds)).toEqual(configView(c));
    }
    // Its flow lives: 10.0.0.2 keeps id 0, and the flow its backend.
    expect(readState(fds).backends.get(0)).toEqual({ address: '10.0.0.2', port: 80, vipId: 0, weight: 1, removed: true });
    expect(parseFrame(flow(TCP.ACK).data)).toMatchObject({ dst: '10.0.0.2', sport });
    // The flow ends: the next apply short of room takes id 0 first.
    expect(flow(TCP.RST | TCP.ACK).retval).toBe(XDP.TX);
    const c = cfg({ ...A, backends: thousand(20) });
    applyConfig(fds, c);
    expect(readState(fds).backends.get(0)).toMatchObject({ vipId: 0, removed: false });
    expect(kernelView(fds)).toEqual(configView(c));
  }, 120_000);
});
