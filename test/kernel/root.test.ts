// The root array and the slot protocol, loaded into the running kernel and
// driven with BPF_PROG_TEST_RUN: verdicts and exact counters.
import { spawn } from 'node:child_process';
import { existsSync, rmSync, unlinkSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testRun, closeFd } from '../../src/libbpf/index.js';
import { RootArray } from '../../src/root/array.js';
import { attach, detach } from '../../src/root/attach.js';
import { ifaceDir, resolveIface } from '../../src/root/pins.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { loadIntoSlot, placeProgram, removeProgram, unloadSlot } from '../../src/root/place.js';
import { SAMPLER } from '../../src/programs/sampler/config.js';
import { enterLabNamespace } from '../helpers/lb.js';
import { uniqueTag } from '../helpers/netns.js';
import { BASELINE_ROW, ROW_ROOT, readRow, zeroCounts, type ActionCounts } from '../../src/root/stats.js';
import { XdplbError } from '../../src/errors.js';
import { BIN, BPF } from '../helpers/cli.js';
import { udp4 } from '../helpers/packets.js';
import { ABI_VERSION } from '../../src/version.js';

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
      root.fill(slot, fd, { replace: true });
    } finally {
      closeFd(fd);
    }
  }

  it('passes and counts in the root row when every slot is empty', () => {
    const r = testRun(root.rootFd, pkt, 100);
    expect(r.retval).toBe(XDP.PASS);
    expect(r.data.equals(pkt)).toBe(true);
    expect(root.counters(ROW_ROOT)).toEqual({ packets: counts({ XDP_PASS: 100n }), bytes: counts({ XDP_PASS: 100n * len }) });
    expect(root.totals()).toEqual({ packets: counts({ XDP_PASS: 100n }), bytes: counts({ XDP_PASS: 100n * len }) });
    for (let s = 0; s < 8; s++) expect(root.counters(s).packets).toEqual(zeroCounts());
  });

  it('drops through a drop program in slot 2 and counts exactly N packets and N*len bytes there', () => {
    fill(2, 'xdp_drop_test');
    const r = testRun(root.rootFd, pkt, 37);
    expect(r.retval).toBe(XDP.DROP);
    expect(root.counters(2)).toEqual({ packets: counts({ XDP_DROP: 37n }), bytes: counts({ XDP_DROP: 37n * len }) });
    expect(root.totals().packets).toEqual(counts({ XDP_DROP: 37n }));
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
    expect(root.totals().packets).toEqual(counts({ XDP_DROP: 10n }));
    expect(root.totals().bytes).toEqual(counts({ XDP_DROP: 10n * len }));
  });

  it('a pass in the last slot is the final verdict', () => {
    fill(0, 'xdp_pass_test');
    fill(7, 'xdp_pass_test');
    expect(testRun(root.rootFd, pkt, 3).retval).toBe(XDP.PASS);
    expect(root.counters(0).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.counters(7).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.totals().packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.counters(ROW_ROOT).packets).toEqual(zeroCounts());
  });

  it('counts an invalid action as INVALID_ACTION in the slot and returns XDP_ABORTED', () => {
    fill(3, 'xdp_bad_action');
    const r = testRun(root.rootFd, pkt, 4);
    expect(r.retval).toBe(XDP.ABORTED);
    expect(root.counters(3)).toEqual({ packets: counts({ XDP_INVALID_ACTION: 4n }), bytes: counts({ XDP_INVALID_ACTION: 4n * len }) });
    expect(root.totals().packets).toEqual(counts({ XDP_ABORTED: 4n }));
  });

  it('counts a PASS once per row: handed on under PASS, final under FINAL_PASS, shown together', () => {
    fill(1, 'xdp_pass_test');
    fill(3, 'xdp_pass_test');
    testRun(root.rootFd, pkt, 6);
    expect(readRow(root.stats, 1)).toEqual({ packets: [0n, 0n, 6n, 0n, 0n, 0n, 0n], bytes: [0n, 0n, 6n * len, 0n, 0n, 0n, 0n] });
    expect(readRow(root.stats, 3)).toEqual({ packets: [0n, 0n, 0n, 0n, 0n, 0n, 6n], bytes: [0n, 0n, 0n, 0n, 0n, 0n, 6n * len] });
    expect(readRow(root.stats, ROW_ROOT).packets.every((n) => n === 0n)).toBe(true);
    expect(root.counters(1)).toEqual({ packets: counts({ XDP_PASS: 6n }), bytes: counts({ XDP_PASS: 6n * len }) });
    expect(root.counters(3)).toEqual({ packets: counts({ XDP_PASS: 6n }), bytes: counts({ XDP_PASS: 6n * len }) });
    expect(root.totals().packets).toEqual(counts({ XDP_PASS: 6n }));
  });

  it('derives exact totals over chains of PASS, DROP and invalid actions', () => {
    const runs: Array<[Record<number, string>, number, Partial<ActionCounts>]> = [
      [{ 0: 'xdp_pass_test', 2: 'xdp_pass_test', 6: 'xdp_drop_test' }, 5, { XDP_DROP: 5n }],
      [{ 1: 'xdp_pass_test', 4: 'xdp_bad_action' }, 3, { XDP_ABORTED: 3n }],
      [{ 3: 'xdp_pass_test', 5: 'xdp_pass_test' }, 7, { XDP_PASS: 7n }],
      [{}, 2, { XDP_PASS: 2n }],
    ];
    const want = zeroCounts();
    for (const [slots, n, verdicts] of runs) {
      for (let s = 0; s < 8; s++) root.empty(s);
      for (const [s, program] of Object.entries(slots)) fill(Number(s), program);
      testRun(root.rootFd, pkt, n);
      for (const [a, count] of Object.entries(verdicts)) want[a as keyof ActionCounts] += count;
      expect(root.totals().packets).toEqual(want);
      expect(root.totals().bytes).toEqual(Object.fromEntries(Object.entries(want).map(([a, v]) => [a, v * len])));
    }
    expect(root.counters(ROW_ROOT).packets).toEqual(counts({ XDP_PASS: 2n }));
    // Emptying a slot restarts its counters; the totals keep every packet.
    for (let s = 0; s < 8; s++) expect(root.counters(s).packets).toEqual(zeroCounts());
  });

  it('restarts one slot\'s counters and keeps every packet in the totals', () => {
    fill(2, 'xdp_pass_test');
    fill(5, 'xdp_drop_test');
    testRun(root.rootFd, pkt, 4);
    root.restartCounters(5);
    expect(root.counters(5).packets).toEqual(zeroCounts());
    expect(root.counters(2).packets).toEqual(counts({ XDP_PASS: 4n }));
    expect(root.totals().packets).toEqual(counts({ XDP_DROP: 4n }));

    // A new program in slot 5 counts from zero; the totals go on.
    fill(5, 'xdp_pass_test');
    testRun(root.rootFd, pkt, 3);
    expect(root.counters(5).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.totals().packets).toEqual(counts({ XDP_DROP: 4n, XDP_PASS: 3n }));
    root.restartCounters(5);
    root.restartCounters(2);
    expect(root.counters(2).packets).toEqual(zeroCounts());
    expect(root.totals()).toEqual({
      packets: counts({ XDP_DROP: 4n, XDP_PASS: 3n }), bytes: counts({ XDP_DROP: 4n * len, XDP_PASS: 3n * len }),
    });
    testRun(root.rootFd, pkt, 1);
    expect(root.counters(2).packets).toEqual(counts({ XDP_PASS: 1n }));
    expect(root.counters(5).packets).toEqual(counts({ XDP_PASS: 1n }));
    expect(root.totals().packets).toEqual(counts({ XDP_DROP: 4n, XDP_PASS: 4n }));
  });

  it('keeps the slot mask in step with the slots', () => {
    expect(root.slotMask()).toBe(0);
    fill(2, 'xdp_pass_test');
    fill(5, 'xdp_drop_test');
    expect(root.slotMask()).toBe(0b100100);
    fill(5, 'xdp_pass_test');
    expect(root.slotMask()).toBe(0b100100);
    expect(root.empty(2)).toBe(true);
    expect(root.slotMask()).toBe(0b100000);
    expect(root.empty(2)).toBe(false);
    expect(root.empty(5)).toBe(true);
    expect(root.slotMask()).toBe(0);
    expect(root.maskMismatch()).toBeNull();
  });

  it('skips a slot filled behind its back, says so, and takes it in at the next change', () => {
    const fd = loadSlotProgram(root, { object: FIXTURES, program: 'xdp_drop_test', slot: 3 });
    try {
      const value = Buffer.alloc(4);
      value.writeInt32LE(fd);
      root.slots.update(3, value); // the prog array alone, as bpftool would
    } finally {
      closeFd(fd);
    }
    expect(root.maskMismatch()).toEqual({ skipped: [3], empty: [] });
    expect(testRun(root.rootFd, pkt, 2).retval).toBe(XDP.PASS);
    expect(root.counters(3).packets).toEqual(zeroCounts());
    expect(root.counters(ROW_ROOT).packets).toEqual(counts({ XDP_PASS: 2n }));

    fill(6, 'xdp_pass_test');
    expect(root.maskMismatch()).toBeNull();
    expect(root.slotMask()).toBe(0b1001000);
    expect(testRun(root.rootFd, pkt, 2).retval).toBe(XDP.DROP);
    expect(root.counters(3).packets).toEqual(counts({ XDP_DROP: 2n }));
  });

  it('says so when a slot in the mask was emptied behind its back, and passes through it', () => {
    fill(1, 'xdp_pass_test');
    fill(4, 'xdp_drop_test');
    root.slots.delete(4);
    expect(root.maskMismatch()).toEqual({ skipped: [], empty: [4] });
    expect(testRun(root.rootFd, pkt, 3).retval).toBe(XDP.PASS);
    // Handed on, then nothing took it: final in slot 1 after all.
    expect(readRow(root.stats, 1).packets).toEqual([0n, 0n, 0n, 0n, 0n, 0n, 3n]);
    expect(readRow(root.stats, 1).bytes).toEqual([0n, 0n, 0n, 0n, 0n, 0n, 3n * len]);
    expect(root.counters(1).packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.totals().packets).toEqual(counts({ XDP_PASS: 3n }));
    expect(root.empty(4)).toBe(false);
    expect(root.maskMismatch()).toBeNull();
    expect(root.slotMask()).toBe(0b10);
  });

  it('the slot number set before load decides which row counts', () => {
    for (const slot of [0, 4, 6]) {
      const r = RootArray.load();
      try {
        const fd = loadSlotProgram(r, { object: FIXTURES, program: 'xdp_drop_test', slot });
        r.fill(slot, fd);
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
    expect(root.empty(4)).toBe(true);
    expect(testRun(root.rootFd, pkt).retval).toBe(XDP.PASS);
    expect(root.empty(4)).toBe(false);
  });

  it('clears counters to zero', () => {
    fill(2, 'xdp_drop_test');
    testRun(root.rootFd, pkt, 5);
    root.clearCounters();
    for (let row = 0; row <= ROW_ROOT; row++) expect(root.counters(row).packets).toEqual(zeroCounts());
    expect(root.totals()).toEqual({ packets: zeroCounts(), bytes: zeroCounts() });
    for (let row = 0; row < BASELINE_ROW + 8; row++) expect(readRow(root.stats, row).packets.every((n) => n === 0n)).toBe(true);
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
    expect(root.totals().packets).toEqual(zeroCounts());
  });

  it('refuses a program built against another <xdplb/slot.h>; forced, it keeps its counters to itself', () => {
    const OLD = BPF('xdp_old_slot.o');
    expect(() => fill(2, 'xdp_old_slot', OLD)).toThrow(new XdplbError(
      `program 'xdp_old_slot' in ${OLD} was built against another version of <xdplb/slot.h> ` +
        `(ABI from before ABI versions, not ${ABI_VERSION}): rebuild it against this one, or pass --force to load it anyway (it will not count)`,
    ));
    expect(root.slotIds()[2]).toBe(0);
    fill(2, 'xdp_old_slot', OLD, true);
    expect(testRun(root.rootFd, pkt, 3).retval).toBe(XDP.PASS);
    // It wrote its "totals" row 9, which is slot 0's baseline here: not ours.
    for (let row = 0; row < BASELINE_ROW + 8; row++) expect(readRow(root.stats, row).packets.every((n) => n === 0n)).toBe(true);
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

describe('a pinned root: the slot mask through every path that changes slots', () => {
  const pins = `/sys/fs/bpf/xdplb-kt-${process.pid}`;
  const tag = uniqueTag();
  const NS = `xkm-${tag}`;
  const IF = `km${tag}`;
  let leave: () => void;
  let root: RootArray;
  beforeEach(() => {
    process.env.XDPLB_PIN_ROOT = pins;
    leave = enterLabNamespace(NS, [['link', 'add', IF, 'type', 'veth', 'peer', 'name', `${IF}p`], ['link', 'set', IF, 'up'], ['link', 'set', `${IF}p`, 'up']]);
    attach([IF], 'skb');
    root = RootArray.openPinned(ifaceDir(resolveIface(IF)))!;
  });
  afterEach(() => {
    root.close();
    leave();
    rmSync(pins, { recursive: true, force: true });
    delete process.env.XDPLB_PIN_ROOT;
  });

  /** The mask as a second opener of the pins sees it. */
  function pinnedMask(): number {
    const r = RootArray.openPinned(ifaceDir(resolveIface(IF)))!;
    try {
      return r.slotMask();
    } finally {
      r.close();
    }
  }

  it('--load and --unload, subprogram attach and detach', () => {
    const iface = resolveIface(IF);
    loadIntoSlot(iface, { object: FIXTURES, program: 'xdp_drop_test', slot: 4 });
    expect(pinnedMask()).toBe(0b10000);
    expect(placeProgram(SAMPLER, [iface], 1)[0].changed).toBe(true);
    expect(pinnedMask()).toBe(0b10010);
    loadIntoSlot(iface, { object: FIXTURES, program: 'xdp_pass_test', slot: 4, replace: true });
    expect(pinnedMask()).toBe(0b10010);
    expect(removeProgram(SAMPLER, [iface])[0].changed).toBe(true);
    expect(pinnedMask()).toBe(0b10000);
    expect(unloadSlot(iface, 4)).toBe(true);
    expect(pinnedMask()).toBe(0);
    expect(root.slotMask()).toBe(0);
  });

  const xdpRootAll = (argsOf: (slot: number) => string[]) => Promise.all(Array.from({ length: 8 }, (_, slot) =>
    new Promise<{ code: number; out: string }>((done) => {
      let out = '';
      const p = spawn('nsenter', [`--net=/run/netns/${NS}`, BIN('xdp-root'), ...argsOf(slot)], { env: { ...process.env, XDPLB_PIN_ROOT: pins }, stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.on('exit', (code) => done({ code: code ?? -1, out }));
    })));

  it('keeps every bit when processes fill and empty slots at the same time', async () => {
    const load = (slot: number) => ['--load', '--interface', IF, '--slot', String(slot), '--object', FIXTURES, '--program', 'xdp_pass_test'];
    expect((await xdpRootAll(load)).map((r) => r.code)).toEqual(Array(8).fill(0));
    expect(root.slotIds().every((id) => id !== 0)).toBe(true);
    expect(pinnedMask()).toBe(0xff);
    expect((await xdpRootAll((slot) => ['--unload', '--interface', IF, '--slot', String(slot)])).map((r) => r.code)).toEqual(Array(8).fill(0));
    expect(root.slotIds().every((id) => id === 0)).toBe(true);
    expect(pinnedMask()).toBe(0);
  });

  it('eight loads into one empty slot at once: exactly one succeeds, the others name the winner', async () => {
    for (let round = 0; round < 3; round++) {
      const results = await xdpRootAll(() => ['--load', '--interface', IF, '--slot', '3', '--object', FIXTURES, '--program', 'xdp_drop_test']);
      const won = results.filter((r) => r.code === 0);
      expect(won).toHaveLength(1);
      const id = root.slotIds()[3];
      expect(won[0].out).toContain(`(id ${id}) into slot 3`);
      for (const r of results.filter((x) => x.code !== 0)) {
        expect(r.code).toBe(1);
        expect(r.out).toContain(`slot 3 of ${IF} already holds 'xdp_drop_test' (id ${id})`);
      }
      expect(unloadSlot(resolveIface(IF), 3)).toBe(true);
    }
  });

  it('--replace reports the program it really replaced', async () => {
    const iface = resolveIface(IF);
    const first = loadIntoSlot(iface, { object: FIXTURES, program: 'xdp_pass_test', slot: 2 });
    const results = await xdpRootAll(() => ['--load', '--replace', '--json', '--interface', IF, '--slot', '2', '--object', FIXTURES, '--program', 'xdp_drop_test']);
    expect(results.every((r) => r.code === 0)).toBe(true);
    // Each replaced a different program: the first load's, then each other's.
    const loaded = results.map((r) => JSON.parse(r.out)[IF]);
    const replaced = new Set(loaded.map((l) => l.replaced_id));
    expect(replaced.size).toBe(8);
    expect(replaced.has(first.id)).toBe(true);
    const ids = new Set(loaded.map((l) => l.id));
    for (const r of replaced) if (r !== first.id) expect(ids.has(r)).toBe(true);
    expect(ids.has(root.slotIds()[2])).toBe(true);
  });

  it('refuses pins without the slot mask, and says how to clean up', () => {
    const dir = ifaceDir(resolveIface(IF));
    unlinkSync(`${dir}/slot_mask`);
    expect(() => RootArray.openPinned(dir, IF)).toThrow(new XdplbError(
      `incomplete root array pins in ${dir}: slot_mask is missing; run xdp-root --detach --interface ${IF} and --attach again`,
    ));
    expect(detach([IF])).toEqual([{ ifname: IF, changed: true, stale: 0 }]);
    expect(existsSync(dir)).toBe(false);
  });
});
