// The sampler's cost under BPF_PROG_TEST_RUN, through a real root array, and
// how fast userspace drains its ring buffer.
//
// Dispatch: ns/packet of the root with the sampler in slot 1 at rate 0, 1000
// and 1, against the empty XDP_PASS floor and against a plain pass program in
// the same slot (the sampler's own cost); the verdict path: a drop program
// with verdict samples off, at 1 in 1000 and at every verdict.
// Drain: the ring filled by test runs at rate 1 (no loss), then read back,
// decoded and encoded as pcapng records; samples per second of that.
import { rmSync } from 'node:fs';
import { BpfMap, BpfObject, closeFd, testRun } from '../src/libbpf/index.js';
import { RootArray, ROOT_OBJECT } from '../src/root/array.js';
import { loadSlotProgram } from '../src/root/slot.js';
import { namespaceDir, pinRoot } from '../src/root/pins.js';
import { CONFIG_MAP, SAMPLER, readSampleCounters, writeRate, writeSampling } from '../src/programs/sampler/config.js';
import { RING_BYTES, SAMPLE_HEADER } from '../src/programs/sampler/layout.js';
import { SampleReader } from '../src/programs/sampler/reader.js';
import { captureWriter } from '../src/programs/sampler/pcap.js';
import { BPF } from '../test/helpers/cli.js';
import { udp4 } from '../test/helpers/packets.js';
import { summarize, type Summary } from './stats.js';

export const SAMPLER_GOAL_NS = 5;
export const DRAIN_GOAL = 200_000;

export interface SamplerCase {
  name: string;
  what: string;
  repeat: number;
  ns: Summary;
  aboveFloor: number;
}

export interface DrainCase {
  name: string;
  frameBytes: number;
  samplesPerFill: number;
  /** Samples per second, median over the rounds. */
  rate: Summary;
  lost: bigint;
}

export interface SamplerResult {
  rounds: number;
  cases: SamplerCase[];
  /** Sampler at rate 0 minus a pass program in the same slot: its own cost. */
  samplerRate0Ns: number;
  /** Sampler at rate 0 through the root minus the floor: the goal's measure. */
  rate0AboveFloor: number;
  drain: DrainCase[];
  goalNs: number;
  drainGoal: number;
  passNs: boolean;
  passDrain: boolean;
}

interface Setup {
  root: RootArray;
  config: BpfMap | null;
  close(): void;
}

/** A root with one program in slot 1 (and nothing else). */
function rootWith(program: 'sampler' | 'xdp_pass_test' | 'xdp_drop_test', pinDir: string): Setup {
  const root = RootArray.load(BPF(ROOT_OBJECT));
  const sampler = program === 'sampler';
  const fd = loadSlotProgram(root, sampler
    ? { object: BPF(SAMPLER.object), program: SAMPLER.program, slot: 1, pins: [{ dir: pinDir, maps: [...SAMPLER.interfaceMaps], recovery: 'bench' }] }
    : { object: BPF('xdp_fixtures.o'), program, slot: 1 });
  root.fill(1, fd);
  closeFd(fd);
  const config = sampler ? BpfMap.openPinned(`${pinDir}/${CONFIG_MAP}`) : null;
  return {
    root, config,
    close: () => {
      config?.close();
      root.close();
    },
  };
}

export function measureSampler(rounds: number, repeat: number): SamplerResult {
  const packet = udp4();
  // A pin tree of its own, removed whole: pins under the machine's tree
  // would leave this namespace's directory behind.
  process.env.XDPLB_PIN_ROOT = `/sys/fs/bpf/xdplb-bench-${process.pid}`;
  const pinDir = `${namespaceDir()}/bench-sampler`;
  const cleanup: Array<() => void> = [() => {
    rmSync(pinRoot(), { recursive: true, force: true });
    delete process.env.XDPLB_PIN_ROOT;
  }];
  try {
    const plain = BpfObject.open(BPF('xdp_plain.o'));
    cleanup.push(() => plain.close());
    plain.loadOnly('xdp_plain_pass');
    plain.load();

    const pass = rootWith('xdp_pass_test', `${pinDir}-a`);
    cleanup.push(pass.close);
    const drop = rootWith('xdp_drop_test', `${pinDir}-b`);
    cleanup.push(drop.close);
    const sampler = rootWith('sampler', `${pinDir}-c`);
    cleanup.push(sampler.close);
    const ring = new SampleReader(sampler.root.maps.samples, () => {});
    cleanup.push(() => ring.close());
    const dropRing = new SampleReader(drop.root.maps.samples, () => {});
    cleanup.push(() => dropRing.close());

    // Rate-1 cases write every packet: a run must fit the ring (no loss, or
    // we would time the ring-full path), so they repeat fewer times.
    const fitting = samplesThatFit(packet.length);
    const samplerAt = (rate: number) => () => writeRate(sampler.config!, rate);
    const verdictAt = (rate: number) => () => writeSampling(drop.root.maps.sampling, { verdictRate: rate, snaplen: 256 });
    const cases = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: plain.programFd('xdp_plain_pass'), n: repeat },
      { name: 'pass program', what: 'root -> slot 1 xdp_pass_test', fd: pass.root.rootFd, n: repeat },
      { name: 'sampler, rate 0', what: 'root -> slot 1 xdp_sampler, off', fd: sampler.root.rootFd, n: repeat, set: samplerAt(0) },
      { name: 'sampler, 1/1000', what: 'root -> slot 1 xdp_sampler, 1 in 1000', fd: sampler.root.rootFd, n: repeat, set: samplerAt(1000) },
      { name: 'sampler, rate 1', what: 'root -> slot 1 xdp_sampler, every packet', fd: sampler.root.rootFd, n: fitting, set: samplerAt(1) },
      { name: 'drop, verdicts off', what: 'root -> slot 1 xdp_drop_test, verdict rate 0', fd: drop.root.rootFd, n: repeat, set: verdictAt(0), want: 1 },
      { name: 'drop, verdicts 1/1000', what: 'root -> slot 1 xdp_drop_test, verdict rate 1000', fd: drop.root.rootFd, n: repeat, set: verdictAt(1000), want: 1 },
      { name: 'drop, every verdict', what: 'root -> slot 1 xdp_drop_test, verdict rate 1', fd: drop.root.rootFd, n: fitting, set: verdictAt(1), want: 1 },
    ].map((c) => ({ ...c, samples: [] as number[] }));

    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        c.set?.();
        const r = testRun(c.fd, packet, c.n);
        if (r.retval !== (c.want ?? 2)) throw new Error(`${c.name}: returned ${r.retval}, expected ${c.want ?? 2}`);
        c.samples.push(r.duration);
        ring.drain();
        dropRing.drain();
      }
    }
    for (const s of [sampler, drop]) {
      const lost = readSampleCounters(s.root.maps.sample_stats).lost;
      if (lost) throw new Error(`the ring buffer lost ${lost} samples during the dispatch cases: the timings would be of the ring-full path`);
    }
    const floor = summarize(cases[0].samples).median;
    const results = cases.map((c) => {
      const ns = summarize(c.samples);
      return { name: c.name, what: c.what, repeat: c.n, ns, aboveFloor: ns.median - floor };
    });
    const median = (name: string) => results.find((c) => c.name === name)!.ns.median;
    const samplerRate0Ns = median('sampler, rate 0') - median('pass program');
    const rate0AboveFloor = median('sampler, rate 0') - floor;

    const drain = [measureDrain(sampler, ring, udp4(), rounds), measureDrain(sampler, ring, udp4({ payload: Buffer.alloc(400, 7) }), rounds)];
    return {
      rounds, cases: results, samplerRate0Ns, rate0AboveFloor, drain, goalNs: SAMPLER_GOAL_NS, drainGoal: DRAIN_GOAL,
      passNs: rate0AboveFloor <= SAMPLER_GOAL_NS,
      passDrain: drain.every((d) => d.rate.median >= DRAIN_GOAL && d.lost === 0n),
    };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}

/** Samples of `captured` bytes the ring holds: each record is an 8-byte ring
 *  header and ours, rounded up to 8 bytes. */
function samplesThatFit(captured: number): number {
  return Math.floor(RING_BYTES / (Math.ceil((8 + SAMPLE_HEADER.size + captured) / 8) * 8));
}

/** Fill the ring at rate 1 (as many samples as fit), then time draining it
 *  through the decoder and the pcapng encoder. */
function measureDrain(s: Setup, warm: SampleReader, frame: Buffer, rounds: number): DrainCase {
  writeRate(s.config!, 1);
  writeSampling(s.root.maps.sampling, { verdictRate: 0, snaplen: 256 });
  warm.drain();
  const cap = Math.min(frame.length, 256);
  const perFill = samplesThatFit(cap);
  const writer = captureWriter('pcapng');
  let got = 0;
  const reader = new SampleReader(s.root.maps.samples, (sample) => {
    writer.packet({ interfaceId: 0, timestampNs: sample.timestamp, origLen: sample.len, data: sample.data });
    got += 1;
  });
  try {
    const lostBefore = readSampleCounters(s.root.maps.sample_stats).lost;
    const rates: number[] = [];
    for (let round = 0; round < rounds; round++) {
      testRun(s.root.rootFd, frame, perFill);
      got = 0;
      const start = process.hrtime.bigint();
      reader.drain();
      const ns = Number(process.hrtime.bigint() - start);
      if (got !== perFill) throw new Error(`drained ${got} samples, expected ${perFill}`);
      rates.push(Math.round(perFill / (ns / 1e9)));
    }
    const lost = readSampleCounters(s.root.maps.sample_stats).lost - lostBefore;
    return { name: `${frame.length}-byte frames, ${cap} bytes captured`, frameBytes: frame.length, samplesPerFill: perFill, rate: summarize(rates), lost };
  } finally {
    reader.close();
  }
}
