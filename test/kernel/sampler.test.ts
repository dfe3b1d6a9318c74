// The sampler and verdict samples, loaded into the running kernel and driven
// through a real root array with BPF_PROG_TEST_RUN: every header field and
// byte of the samples read back from the ring buffer, and exact counters.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfMap, closeFd, testRun } from '../../src/libbpf/index.js';
import { bootTimeNs } from '../../src/sys/clock.js';
import { RootArray } from '../../src/root/array.js';
import { namespaceDir } from '../../src/root/pins.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { CONFIG_MAP, SAMPLER, readSampleCounters, writeRate, writeSampling } from '../../src/programs/sampler/config.js';
import { RING_BYTES, SAMPLE_HEADER, SNAP_MAX, type Sample } from '../../src/programs/sampler/layout.js';
import { SampleReader } from '../../src/programs/sampler/reader.js';
import { BPF } from '../helpers/cli.js';
import { udp4 } from '../helpers/packets.js';
import { uniqueTag } from '../helpers/netns.js';

const XDP = { ABORTED: 0, DROP: 1, PASS: 2 };
const LOOPBACK_IFINDEX = 1; // test runs see the netns loopback as the ingress device

describe('sampler and verdict samples under BPF_PROG_TEST_RUN', () => {
  let root: RootArray;
  let reader: SampleReader;
  let samples: Sample[];
  let config: BpfMap | null;
  // Pins in a tree of the test's own, removed whole: under the machine's
  // tree they would leave this namespace's directory behind.
  const pinTree = `/sys/fs/bpf/xdplb-kt-sampler-${uniqueTag()}`;
  let pinDir = '';
  beforeAll(() => {
    process.env.XDPLB_PIN_ROOT = pinTree;
    pinDir = join(namespaceDir(), 'sampler');
  });
  afterAll(() => {
    rmSync(pinTree, { recursive: true, force: true });
    delete process.env.XDPLB_PIN_ROOT;
  });

  beforeEach(() => {
    root = RootArray.load();
    samples = [];
    reader = new SampleReader(root.maps.samples, (s) => samples.push(s));
    config = null;
  });
  afterEach(() => {
    reader.close();
    config?.close();
    root.close();
    rmSync(pinDir, { recursive: true, force: true });
  });

  /** The sampler in `slot` at 1 in `rate`. */
  function sampler(slot: number, rate: number): void {
    const fd = loadSlotProgram(root, {
      object: BPF(SAMPLER.object), program: SAMPLER.program, slot, pins: [{ dir: pinDir, maps: [...SAMPLER.interfaceMaps], recovery: 'test' }],
    });
    root.fill(slot, fd);
    closeFd(fd);
    config = BpfMap.openPinned(join(pinDir, CONFIG_MAP))!;
    writeRate(config, rate);
  }

  function fixture(slot: number, program: string): void {
    const fd = loadSlotProgram(root, { object: BPF('xdp_fixtures.o'), program, slot });
    root.fill(slot, fd, { replace: true });
    closeFd(fd);
  }

  const counters = () => readSampleCounters(root.maps.sample_stats);
  const settings = (verdictRate: number, snaplen: number) => writeSampling(root.maps.sampling, { verdictRate, snaplen });

  it('at rate 1 samples every packet with exact header fields and bytes, and passes it on unchanged', () => {
    sampler(1, 1);
    const pkt = udp4();
    const before = bootTimeNs();
    const r = testRun(root.rootFd, pkt, 5);
    const after = bootTimeNs();
    expect(r.retval).toBe(XDP.PASS);
    expect(r.data.equals(pkt)).toBe(true);
    expect(reader.drain()).toBe(5);
    expect(samples).toHaveLength(5);
    for (const s of samples) {
      expect({ ...s, timestamp: 0n, data: s.data.toString('hex') }).toEqual({
        kind: 'packet', timestamp: 0n, ifindex: LOOPBACK_IFINDEX, rxQueue: 0, len: pkt.length, slot: 1, action: null,
        data: pkt.toString('hex'),
      });
      expect(s.timestamp >= before && s.timestamp <= after).toBe(true);
    }
    for (let i = 1; i < samples.length; i++) expect(samples[i].timestamp >= samples[i - 1].timestamp).toBe(true);
    expect(counters()).toEqual({ packets: 5n, verdicts: 0n, lost: 0n });
    expect(root.counters(1).packets.XDP_PASS).toBe(5n);
    expect(reader.drain()).toBe(0);
  });

  it('at rate 0 takes nothing', () => {
    sampler(1, 0);
    expect(testRun(root.rootFd, udp4(), 1000).retval).toBe(XDP.PASS);
    expect(reader.drain()).toBe(0);
    expect(counters()).toEqual({ packets: 0n, verdicts: 0n, lost: 0n });
  });

  it('at rate N samples about 1 in N (within 8 standard deviations)', () => {
    const rate = 16;
    const n = 32_000;
    sampler(2, rate);
    testRun(root.rootFd, udp4(), n);
    const taken = Number(counters().packets);
    const mean = n / rate;
    const sd = Math.sqrt(n * (1 / rate) * (1 - 1 / rate)); // ~43: the bound is +-350
    expect(Math.abs(taken - mean)).toBeLessThan(8 * sd);
    expect(reader.drain()).toBe(taken);
    expect(samples.every((s) => s.slot === 2 && s.kind === 'packet')).toBe(true);
    expect(counters().lost).toBe(0n);
  });

  it('truncates to snaplen and keeps the original length', () => {
    sampler(1, 1);
    const pkt = udp4({ payload: Buffer.alloc(1400, 0xab) });
    settings(0, 34);
    testRun(root.rootFd, pkt);
    settings(0, 65535);
    testRun(root.rootFd, pkt);
    reader.drain();
    expect(samples.map((s) => [s.len, s.data.toString('hex')])).toEqual([
      [pkt.length, pkt.subarray(0, 34).toString('hex')],
      [pkt.length, pkt.toString('hex')],
    ]);
  });

  it(`captures at most ${SNAP_MAX} bytes of a larger frame`, () => {
    sampler(1, 1);
    const pkt = udp4({ payload: Buffer.alloc(SNAP_MAX + 100, 0x5a) });
    settings(0, 65535);
    expect(testRun(root.rootFd, pkt).retval).toBe(XDP.PASS);
    reader.drain();
    expect(samples.map((s) => [s.len, s.data.length])).toEqual([[pkt.length, SNAP_MAX]]);
    expect(samples[0].data.equals(pkt.subarray(0, SNAP_MAX))).toBe(true);
  });

  it('counts the samples a full ring buffer cannot take, and loses no other', () => {
    sampler(1, 1);
    const pkt = udp4();
    // Each record: an 8-byte ring header, then ours, rounded up to 8 bytes.
    const record = Math.ceil((8 + SAMPLE_HEADER.size + pkt.length) / 8) * 8;
    const fits = Math.floor(RING_BYTES / record);
    const n = fits + 1234;
    expect(testRun(root.rootFd, pkt, n).retval).toBe(XDP.PASS);
    expect(counters()).toEqual({ packets: BigInt(fits), verdicts: 0n, lost: 1234n });
    expect(reader.drain()).toBe(fits);
    expect(samples).toHaveLength(fits);
    // Drained, the ring takes samples again.
    testRun(root.rootFd, pkt, 3);
    expect(reader.drain()).toBe(3);
    expect(counters()).toEqual({ packets: BigInt(fits + 3), verdicts: 0n, lost: 1234n });
  });

  it('reports final verdicts with the slot and action that made them', () => {
    sampler(1, 0);
    fixture(2, 'xdp_pass_test');
    fixture(4, 'xdp_drop_test');
    settings(1, 256);
    const pkt = udp4();
    expect(testRun(root.rootFd, pkt, 3).retval).toBe(XDP.DROP);
    fixture(4, 'xdp_bad_action');
    expect(testRun(root.rootFd, pkt, 2).retval).toBe(XDP.ABORTED);
    reader.drain();
    expect(samples.map((s) => [s.kind, s.slot, s.action, s.len, s.data.equals(pkt)])).toEqual([
      ...Array(3).fill(['verdict', 4, 'XDP_DROP', pkt.length, true]),
      ...Array(2).fill(['verdict', 4, 'XDP_ABORTED', pkt.length, true]),
    ]);
    expect(counters()).toEqual({ packets: 0n, verdicts: 5n, lost: 0n });
  });

  it('reports no verdicts at verdict rate 0, and never a PASS', () => {
    fixture(3, 'xdp_drop_test');
    expect(testRun(root.rootFd, udp4(), 50).retval).toBe(XDP.DROP);
    root.empty(3);
    fixture(3, 'xdp_pass_test');
    settings(1, 256);
    expect(testRun(root.rootFd, udp4(), 50).retval).toBe(XDP.PASS);
    expect(reader.drain()).toBe(0);
    expect(counters()).toEqual({ packets: 0n, verdicts: 0n, lost: 0n });
  });

  it('puts packet and verdict samples of one packet in order: sampler first, verdict after', () => {
    sampler(0, 1);
    fixture(6, 'xdp_drop_test');
    settings(1, 256);
    testRun(root.rootFd, udp4(), 2);
    reader.drain();
    expect(samples.map((s) => [s.kind, s.slot, s.action])).toEqual([
      ['packet', 0, null], ['verdict', 6, 'XDP_DROP'], ['packet', 0, null], ['verdict', 6, 'XDP_DROP'],
    ]);
  });
});
