// The root array and the slot protocol, loaded into the running kernel and
// driven with BPF_PROG_TEST_RUN: verdicts and exact counters.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testRun, closeFd } from '../../src/libbpf/index.js';
import { RootArray } from '../../src/root/array.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { ROW_ROOT, ROW_TOTAL, zeroCounts, type ActionCounts } from '../../src/root/stats.js';
import { XdplbError } from '../../src/errors.js';
import { BPF } from '../helpers/cli.js';
import { udp4 } from '../helpers/packets.js';

const FIXTURES = BPF('xdp_fixtures.o');
const PLAIN = BPF('xdp_plain.o');
const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 };

function counts(values: Partial<ActionCounts>): ActionCounts {
  return { ...zeroCounts(), ...values };
}

describe('root array under BPF_PROG_TEST_RUN', () => {
  let root: RootArray;
  const pkt = udp4();
  const len = BigInt(pkt.length);

  beforeEach(() => {
    root = RootArray.load();
  });
  afterEach(() => root.close());

  function fill(slot: number, program: string, object = FIXTURES, force = false): void {
    const fd = loadSlotProgram(root, { object, program, slot, force });
    try {
      root.setSlot(slot, fd);
    } finally {
      closeFd(fd);
    }
  }

  it('passes and counts in the root row when every slot is empty', () => {
    const r = testRun(root.rootFd, pkt, 100);
    expect(r.retval).toBe(XDP.PASS);
    expect(r.data.equals(pkt)).toBe(true);
    expect(root.counters(ROW_ROOT)).toEqual({ packets: counts({ XDP_PASS: 100n }), bytes: counts({ XDP_PASS: 100n * len }) });
    expect(root.counters(ROW_TOTAL)).toEqual({ packets: counts({ XDP_PASS: 100n }), bytes: counts({ XDP_PASS: 100n * len }) });
    for (let s = 0; s < 8; s++) expect(root.counters(s).packets).toEqual(zeroCounts());
  });

  it('drops through a drop program in slot 2 and counts exactly N packets and N*len bytes there', () => {
    fill(2, 'xdp_drop_test');
    const r = testRun(root.rootFd, pkt, 37);
    expect(r.retval).toBe(XDP.DROP);
    expect(root.counters(2)).toEqual({ packets: counts({ XDP_DROP: 37n }), bytes: counts({ XDP_DROP: 37n * len }) });
    expect(root.counters(ROW_TOTAL).packets).toEqual(counts({ XDP_DROP: 37n }));
    expect(root.counters(ROW_ROOT).packets).toEqual(zeroCounts());
    expect(root.slotIds().map((id) => id !== 0)).toEqual([false, false, true, false, false, false, false, false]);
  });

  it('hands PASS on: pass in slot 1 then drop in slot 5', () => {
    fill(1, 'xdp_pass_test');
    fill(5, 'xdp_drop_test');
    const r = testRun(root.rootFd, pkt, 10);
    expect(r.retval).toBe(XDP.DROP);
    expect(root.counters(1).packets).toEqual(counts({ XDP_PASS: 10n }));
    expect(root.counters(5).packets).toEqual(counts({ XDP_DROP: 10n }));
    expect(root.counters(ROW_TOTAL).packets).toEqual(counts({ XDP_DROP: 10n }));
    expect(root.counters(ROW_TOTAL).bytes).toEqual(counts({ XDP_DROP: 10n * len }));
  });

  it('a pass in the last slot is the final verdict', () => {
    fill(0, 'xdp_pass_test');
    fill(7, 'xdp_pass_test');
    expect(testRun(root.rootFd, pkt, 3).retval).toBe(XDP.PASS);
    expect(root.counters(0).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.counters(7).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.counters(ROW_TOTAL).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.counters(ROW_ROOT).packets).toEqual(zeroCounts());
  });

  it('counts an invalid action as INVALID_ACTION in the slot and returns XDP_ABORTED', () => {
    fill(3, 'xdp_bad_action');
    const r = testRun(root.rootFd, pkt, 4);
    expect(r.retval).toBe(XDP.ABORTED);
    expect(root.counters(3)).toEqual({ packets: counts({ XDP_INVALID_ACTION: 4n }), bytes: counts({ XDP_INVALID_ACTION: 4n * len }) });
    expect(root.counters(ROW_TOTAL).packets).toEqual(counts({ XDP_ABORTED: 4n }));
  });

  it('the slot number set before load decides which row counts', () => {
    for (const slot of [0, 4, 6]) {
      const r = RootArray.load();
      try {
        const fd = loadSlotProgram(r, { object: FIXTURES, program: 'xdp_drop_test', slot });
        r.setSlot(slot, fd);
        closeFd(fd);
        testRun(r.rootFd, pkt, 2);
        for (let s = 0; s < 8; s++) expect(r.counters(s).packets.XDP_DROP).toBe(s === slot ? 2n : 0n);
      } finally {
        r.close();
      }
    }
  });

  it('replacing a slot between runs changes the verdict with no error', () => {
    fill(4, 'xdp_drop_test');
    expect(testRun(root.rootFd, pkt).retval).toBe(XDP.DROP);
    fill(4, 'xdp_pass_test');
    expect(testRun(root.rootFd, pkt).retval).toBe(XDP.PASS);
    fill(4, 'xdp_drop_test');
    expect(testRun(root.rootFd, pkt).retval).toBe(XDP.DROP);
    expect(root.clearSlot(4)).toBe(true);
    expect(testRun(root.rootFd, pkt).retval).toBe(XDP.PASS);
    expect(root.clearSlot(4)).toBe(false);
  });

  it('clears counters to zero', () => {
    fill(2, 'xdp_drop_test');
    testRun(root.rootFd, pkt, 5);
    root.clearCounters();
    for (let row = 0; row < 10; row++) expect(root.counters(row).packets).toEqual(zeroCounts());
  });

  it('refuses a program that does not use the slot protocol, and says why', () => {
    expect(() => fill(2, 'xdp_plain_drop', PLAIN)).toThrow(
      /program 'xdp_plain_drop' in .*xdp_plain\.o does not use the slot protocol: .*xdplb_return/,
    );
    expect(root.slotIds()[2]).toBe(0);
  });

  it('loads a non-conforming program with force: it decides but neither counts nor chains', () => {
    fill(1, 'xdp_plain_pass', PLAIN, true);
    fill(5, 'xdp_drop_test');
    expect(testRun(root.rootFd, pkt, 3).retval).toBe(XDP.PASS);
    expect(root.counters(1).packets).toEqual(zeroCounts());
    expect(root.counters(5).packets).toEqual(zeroCounts());
    expect(root.counters(ROW_TOTAL).packets).toEqual(zeroCounts());
  });

  it('names the programs an object has when the one asked for is missing', () => {
    expect(() => fill(2, 'xdp_nope')).toThrow(
      new XdplbError(`no program 'xdp_nope' in ${FIXTURES}: expected one of xdp_pass_test, xdp_drop_test, xdp_bad_action`),
    );
  });

  it('names a missing object file', () => {
    expect(() => fill(2, 'xdp_drop_test', '/nonexistent/x.o')).toThrow(/object file '\/nonexistent\/x\.o' not found/);
  });

  it('rejects a file that is not a BPF object with the libbpf call and errno', () => {
    expect(() => fill(2, 'xdp_drop_test', '/etc/hostname')).toThrow(
      /cannot open BPF object \/etc\/hostname: bpf_object__open_file failed with LIBBPF_ERRNO__FORMAT \(BPF object format invalid\)/,
    );
  });
});
