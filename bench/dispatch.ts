// Per-packet cost of dispatching through the root, measured by the kernel
// itself with BPF_PROG_TEST_RUN (no NIC, no driver: only program cost plus
// the test-run loop, which the floor case measures on its own).
import { BpfObject, closeFd, testRun } from '../src/libbpf/index.js';
import { RootArray, ROOT_OBJECT } from '../src/root/array.js';
import { loadSlotProgram } from '../src/root/slot.js';
import { BPF } from '../test/helpers/cli.js';
import { udp4 } from '../test/helpers/packets.js';
import { summarize, type Summary } from './stats.js';

const XDP_PASS = 2;
export const OVERHEAD_GOAL_NS = 5;

export interface DispatchCase {
  name: string;
  what: string;
  ns: Summary;
  /** Median minus the floor's median. */
  aboveFloor: number;
}

export interface DispatchResult {
  rounds: number;
  repeat: number;
  frameBytes: number;
  cases: DispatchCase[];
  /** Median through the root minus median of the direct run. */
  overheadNs: number;
  goalNs: number;
  pass: boolean;
}

export function measureDispatch(rounds: number, repeat: number): DispatchResult {
  // A 60-byte Ethernet/IPv4/UDP frame: 64 bytes on the wire with the FCS.
  const packet = udp4();
  const cleanup: Array<() => void> = [];
  try {
    const plain = BpfObject.open(BPF('xdp_plain.o'));
    cleanup.push(() => plain.close());
    plain.loadOnly('xdp_plain_pass');
    plain.load();

    const emptyRoot = RootArray.load(BPF(ROOT_OBJECT));
    cleanup.push(() => emptyRoot.close());

    // Its own root, so slot 0 holds the pass program and every other slot
    // stays empty; run both directly and through the root.
    const root = RootArray.load(BPF(ROOT_OBJECT));
    cleanup.push(() => root.close());
    const passFd = loadSlotProgram(root, { object: BPF('xdp_fixtures.o'), program: 'xdp_pass_test', slot: 0 });
    cleanup.push(() => closeFd(passFd));
    root.fill(0, passFd);

    const cases = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: plain.programFd('xdp_plain_pass') },
      { name: 'root, empty slots', what: 'xdp_root, all 8 slots empty', fd: emptyRoot.rootFd },
      { name: 'direct', what: 'xdp_pass_test (slot 0) run by its own fd', fd: passFd },
      { name: 'through root', what: 'xdp_root -> slot 0 xdp_pass_test', fd: root.rootFd },
    ].map((c) => ({ ...c, samples: [] as number[] }));

    // Round by round, so drifting machine noise lands on every case alike.
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        const r = testRun(c.fd, packet, repeat);
        if (r.retval !== XDP_PASS) {
          throw new Error(`${c.name}: ${c.what} returned ${r.retval}, expected XDP_PASS (${XDP_PASS})`);
        }
        c.samples.push(r.duration);
      }
    }

    const summaries = cases.map((c) => ({ name: c.name, what: c.what, ns: summarize(c.samples) }));
    const floor = summaries[0].ns.median;
    const results = summaries.map((c) => ({ ...c, aboveFloor: c.ns.median - floor }));
    const median = (name: string) => results.find((c) => c.name === name)!.ns.median;
    const overheadNs = median('through root') - median('direct');
    return {
      rounds, repeat, frameBytes: packet.length, cases: results,
      overheadNs, goalNs: OVERHEAD_GOAL_NS, pass: overheadNs <= OVERHEAD_GOAL_NS,
    };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}
