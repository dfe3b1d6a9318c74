// The load balancer's cost per packet through the root, measured by the
// kernel with BPF_PROG_TEST_RUN inside a network namespace of its own (so
// bpf_fib_lookup sees a real device, route and neighbour), and the control
// plane's apply time for a large config and for a one-backend change.
import { BpfObject, closeFd, ifNameToIndex, testRun } from '../src/libbpf/index.js';
import { RootArray, ROOT_OBJECT } from '../src/root/array.js';
import { loadSlotProgram } from '../src/root/slot.js';
import { validateConfig } from '../src/programs/lb/config.js';
import { applyConfig, type LbFds } from '../src/programs/lb/state.js';
import { BPF } from '../test/helpers/cli.js';
import { uniqueTag } from '../test/helpers/netns.js';
import { TCP, closeFds, enterLabNamespace, frame, lbFdsOf, parseFrame, sysctlIn } from '../test/helpers/lb.js';
import { summarize, type Summary } from './stats.js';

const XDP = { PASS: 2, TX: 3 };
const SLOT = 7;
const LB_MAC = '02:00:00:00:00:10';
export const GOALS = { established: 40, syn: 120, applyLargeMs: 2000, applyOneMs: 50 } as const;

export interface LbCase {
  name: string;
  what: string;
  ns: Summary;
  aboveFloor: number;
  goal?: number;
}

export interface LbBenchResult {
  rounds: number;
  /** Single-packet runs per round and case. */
  calls: number;
  cases: LbCase[];
  applyLargeMs: Summary;
  applyOneMs: Summary;
}

const BASE = {
  nat: { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' },
  vips: [
    { address: '10.0.0.10', port: 8000, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }] },
    { address: 'fd00::10', port: 8000, backends: [{ address: 'fd00::2' }, { address: 'fd00::3' }] },
  ],
};

function largeConfig(weightOfFirst: number) {
  return {
    nat: { source_ipv4: '10.0.0.10' },
    vips: Array.from({ length: 100 }, (_, v) => ({
      address: `10.2.0.${v + 1}`, port: 80,
      backends: Array.from({ length: 100 }, (_, b) => ({ address: `10.3.${v}.${b + 1}`, weight: v === 0 && b === 0 ? weightOfFirst : 1 })),
    })),
  };
}

function lbInstance(config: unknown): { root: RootArray; fds: LbFds; close: () => void } {
  const root = RootArray.load(BPF(ROOT_OBJECT));
  const fd = loadSlotProgram(root, { object: BPF('xdp_lb.o'), program: 'xdp_lb', slot: SLOT });
  root.setSlot(SLOT, fd);
  const fds = lbFdsOf(fd);
  closeFd(fd);
  applyConfig(fds, validateConfig(config));
  return { root, fds, close: () => { closeFds(fds); root.close(); } };
}

export function measureLb(rounds: number, calls: number): LbBenchResult {
  const name = `xlbb-${uniqueTag()}`;
  const leave = enterLabNamespace(name, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ...['lbA', 'lbAp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', '10.0.0.10/24', 'dev', 'lbA'],
    ['addr', 'add', 'fd00::10/64', 'dev', 'lbA', 'nodad'],
    ...[['10.0.0.1', '01'], ['10.0.0.2', '02'], ['10.0.0.3', '03'], ['fd00::1', '01'], ['fd00::2', '02'], ['fd00::3', '03']].map(
      ([a, m]) => ['neigh', 'replace', a, 'lladdr', `02:00:00:00:00:${m}`, 'dev', 'lbA', 'nud', 'permanent'],
    ),
  ]);
  const cleanup: Array<() => void> = [leave];
  try {
    const ifindex = ifNameToIndex('lbA');
    sysctlIn(name, 'net.ipv4.conf.all.forwarding', '1');
    sysctlIn(name, 'net.ipv6.conf.all.forwarding', '1');
    const plain = BpfObject.open(BPF('xdp_plain.o'));
    cleanup.push(() => plain.close());
    plain.loadOnly('xdp_plain_pass');
    plain.load();
    const lb = lbInstance(BASE);
    cleanup.push(lb.close);
    // Every SYN a new flow: with tcp_idle_s 0 the flow's entry has always
    // expired, so each repeat picks a backend and takes a NAT port again.
    const fresh = lbInstance({ ...BASE, timeouts: { tcp_idle_s: 0 } });
    cleanup.push(fresh.close);

    const client = { src: '10.0.0.1', dst: '10.0.0.10', sport: 40000, dport: 8000, proto: 'tcp' as const, dstMac: LB_MAC, payload: Buffer.alloc(0) };
    const syn = frame({ ...client, flags: TCP.SYN });
    const out = parseFrame(testRun(lb.root.rootFd, syn, 1, ifindex).data);
    const ack = frame({ ...client, flags: TCP.ACK });
    const reply = frame({ src: out.dst, dst: '10.0.0.10', sport: 8000, dport: out.sport, proto: 'tcp', flags: TCP.ACK, dstMac: LB_MAC, payload: Buffer.alloc(0) });
    const client6 = { ...client, src: 'fd00::1', dst: 'fd00::10' };
    testRun(lb.root.rootFd, frame({ ...client6, flags: TCP.SYN }), 1, ifindex);
    const ack6 = frame({ ...client6, flags: TCP.ACK });
    const other = frame({ ...client, dport: 8001, flags: TCP.ACK });

    const cases = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: plain.programFd('xdp_plain_pass'), pkt: ack, verdict: XDP.PASS },
      { name: 'not for a VIP', what: 'root -> xdp_lb, TCP to another port: XDP_PASS', fd: lb.root.rootFd, pkt: other, verdict: XDP.PASS },
      { name: 'established flow', what: 'TCP ACK of a tracked flow: rewrite, FIB, XDP_TX', fd: lb.root.rootFd, pkt: ack, verdict: XDP.TX, goal: GOALS.established },
      { name: 'new flow (SYN)', what: 'Maglev pick, NAT port, new entry, XDP_TX', fd: fresh.root.rootFd, pkt: syn, verdict: XDP.TX, goal: GOALS.syn },
      { name: 'reply', what: 'backend -> NAT port: rewritten back, XDP_TX', fd: lb.root.rootFd, pkt: reply, verdict: XDP.TX },
      { name: 'IPv6 established', what: 'TCP ACK of a tracked IPv6 flow, XDP_TX', fd: lb.root.rootFd, pkt: ack6, verdict: XDP.TX },
    ].map((c) => ({ ...c, samples: [] as number[] }));
    // One packet per run: a test run repeats on the same buffer, which the
    // balancer has rewritten after the first pass (and the kernel reports
    // whole ns), so each sample is the median of `calls` single runs.
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        const runs: number[] = [];
        for (let i = 0; i < calls; i++) {
          const r = testRun(c.fd, c.pkt, 1, ifindex);
          if (r.retval !== c.verdict) throw new Error(`${c.name}: returned ${r.retval}, expected ${c.verdict}`);
          runs.push(r.duration);
        }
        c.samples.push(summarize(runs).median);
      }
    }
    const floor = summarize(cases[0].samples).median;
    const results = cases.map((c) => {
      const s = summarize(c.samples);
      return { name: c.name, what: c.what, ns: s, aboveFloor: s.median - floor, ...(c.goal ? { goal: c.goal } : {}) };
    });

    // Control plane: validate + apply, in process (what --apply does after
    // start-up), on an instance of its own.
    const large: number[] = [];
    const one: number[] = [];
    for (let round = 0; round < Math.max(3, Math.min(rounds, 5)); round++) {
      const cp = lbInstance({ nat: BASE.nat, vips: [] });
      try {
        let t = performance.now();
        applyConfig(cp.fds, validateConfig(largeConfig(1)));
        large.push(performance.now() - t);
        t = performance.now();
        const r = applyConfig(cp.fds, validateConfig(largeConfig(2)));
        one.push(performance.now() - t);
        if (r.tables_written !== 1 || r.backends_written !== 1) throw new Error(`one-backend change wrote ${JSON.stringify(r)}`);
      } finally {
        cp.close();
      }
    }
    return { rounds, calls, cases: results, applyLargeMs: summarize(large), applyOneMs: summarize(one) };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}
