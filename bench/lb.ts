// The load balancer's cost per packet through the root, measured by the
// kernel with BPF_PROG_TEST_RUN inside a network namespace of its own (so
// bpf_fib_lookup sees a real device, route and neighbour), and the control
// plane's apply time for a large config and for a one-backend change.
import { BpfObject, possibleCpus, testRun } from '../src/libbpf/index.js';
import { ifNameToIndex } from '../src/sys/netdev.js';
import { monotonicNs } from '../src/sys/clock.js';
import { validateConfig, vipName } from '../src/programs/lb/config.js';
import { applyConfig } from '../src/programs/lb/apply.js';
import { readState, type LbMaps } from '../src/programs/lb/state.js';
import { LAYOUT, PROTO, addrBytes, familyOf } from '../src/programs/lb/layout.js';
import { BPF } from '../test/helpers/cli.js';
import { uniqueTag } from '../test/helpers/netns.js';
import { enterLabNamespace, frame, type LbInstance, loadLb, sysctlIn, TCP } from '../test/helpers/lb.js';
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
  repeat: number;
  cases: LbCase[];
  applyLargeMs: Summary;
  applyOneMs: Summary;
}

/**
 * A test run repeats the program on one buffer, which the balancer rewrites
 * on the first pass. So the bench builds a loop in which every rewritten
 * packet is again a packet of the same kind: VIP A's backend is VIP B's
 * address and B's backend is A's, the NAT source is a neighbour (not a local
 * address), and two tracked flows are written into the tables so that
 * NAT:pa -> A becomes NAT:pb -> B, which becomes NAT:pa -> A again (and each
 * one's reply becomes the other's). The allocator itself never closes such a
 * loop: it hands every new flow a port no live flow to that backend holds.
 */
const NAT4 = '10.0.0.10';
const NAT6 = 'fd00::10';
const PA = 20001;
const PB = 20002;
const SYN_REPEAT = 5000;
const LOOP = {
  nat: { source_ipv4: NAT4, source_ipv6: NAT6 },
  vips: [
    { address: '10.0.0.30', port: 8000, backends: [{ address: '10.0.0.20' }] },
    { address: '10.0.0.20', port: 8000, backends: [{ address: '10.0.0.30' }] },
    { address: 'fd00::30', port: 8000, backends: [{ address: 'fd00::20' }] },
    { address: 'fd00::20', port: 8000, backends: [{ address: 'fd00::30' }] },
  ],
};

function flowKey(src: string, dst: string, sport: number, dport: number): Buffer {
  const L = LAYOUT.lb_flow;
  const b = Buffer.alloc(L.size);
  addrBytes(src).copy(b, L.src);
  addrBytes(dst).copy(b, L.dst);
  b.writeUInt16BE(sport, L.sport);
  b.writeUInt16BE(dport, L.dport);
  b[L.proto] = PROTO.tcp;
  b[L.family] = familyOf(src);
  return b;
}

/** The two flows of the loop between VIPs `a` and `b` (addresses), with
 *  their connection and NAT entries. */
function writeLoop(fds: LbMaps, a: string, b: string, nat: string): void {
  const state = readState(fds);
  const vipId = (addr: string) => state.vips.get(vipName({ address: addr, port: 8000, protocol: 'tcp' }))!.id;
  const backendOf = (vip: string) => [...state.backends.entries()].find(([, e]) => e.vipId === vipId(vip))![0];
  const now = monotonicNs();
  const track = (vip: string, sport: number, natPort: number, backendAddr: string) => {
    const flow = flowKey(nat, vip, sport, 8000);
    const conn = Buffer.alloc(LAYOUT.lb_conn.size);
    // Not in the past on either clock of lb_now(): the first packet sets it.
    conn.writeBigUInt64LE(now, LAYOUT.lb_conn.last_seen);
    conn.writeUInt32LE(backendOf(vip), LAYOUT.lb_conn.backend);
    conn.writeUInt16BE(natPort, LAYOUT.lb_conn.nat_port);
    // Per CPU: the same entry on every CPU the bench may run on.
    fds.lb_conns.update(flow, Buffer.concat(Array.from({ length: possibleCpus() }, () => conn)));
    const key = Buffer.alloc(LAYOUT.lb_nat_key.size);
    addrBytes(backendAddr).copy(key, LAYOUT.lb_nat_key.backend);
    key.writeUInt16BE(8000, LAYOUT.lb_nat_key.bport);
    key.writeUInt16BE(natPort, LAYOUT.lb_nat_key.nport);
    key[LAYOUT.lb_nat_key.proto] = PROTO.tcp;
    key[LAYOUT.lb_nat_key.family] = familyOf(nat);
    const value = Buffer.alloc(LAYOUT.lb_nat.size);
    flow.copy(value, LAYOUT.lb_nat.flow);
    value.writeUInt32LE(backendOf(vip), LAYOUT.lb_nat.backend);
    value.writeUInt32LE(vipId(vip), LAYOUT.lb_nat.vip);
    fds.lb_nat.update(key, value); // cpu 0: the replies touch CPU 0's entry
  };
  track(a, PA, PB, b); // NAT:pa -> a  becomes  NAT:pb -> b
  track(b, PB, PA, a); // NAT:pb -> b  becomes  NAT:pa -> a
}

export function largeConfig(weightOfFirst: number) {
  return {
    nat: { source_ipv4: '10.0.0.10' },
    vips: Array.from({ length: 100 }, (_, v) => ({
      address: `10.2.0.${v + 1}`, port: 80,
      backends: Array.from({ length: 100 }, (_, b) => ({ address: `10.3.${v}.${b + 1}`, weight: v === 0 && b === 0 ? weightOfFirst : 1 })),
    })),
  };
}

export function lbInstance(config: unknown): LbInstance {
  const lb = loadLb(SLOT);
  try {
    applyConfig(lb.fds, validateConfig(config));
  } catch (err) {
    lb.close();
    throw err;
  }
  return lb;
}

export function measureLb(rounds: number, repeat: number): LbBenchResult {
  const name = `xlbb-${uniqueTag()}`;
  const leave = enterLabNamespace(name, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ...['lbA', 'lbAp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', '10.0.0.99/24', 'dev', 'lbA'],
    ['addr', 'add', 'fd00::99/64', 'dev', 'lbA', 'nodad'],
    ...[['10.0.0.1', '01'], [NAT4, '10'], ['10.0.0.20', '20'], ['10.0.0.30', '30'], ['fd00::1', '01'], [NAT6, '10'], ['fd00::20', '20'], ['fd00::30', '30']].map(
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
    const lb = lbInstance(LOOP);
    cleanup.push(lb.close);
    // Every pass a new flow: a SYN to A becomes NAT:p1 -> B, a flow B has
    // never seen, which becomes NAT:p2 -> A, another new one, and so on;
    // each round starts from a new client port and makes SYN_REPEAT flows,
    // a small part of the NAT ports (so most take the first port they try).
    const fresh = lbInstance({ ...LOOP, nat: { ...LOOP.nat, port_min: 1024, port_max: 65535 } });
    cleanup.push(fresh.close);

    writeLoop(lb.fds, '10.0.0.30', '10.0.0.20', NAT4);
    writeLoop(lb.fds, 'fd00::30', 'fd00::20', NAT6);
    const tcp = { sport: PA, dport: 8000, proto: 'tcp' as const, dstMac: LB_MAC, payload: Buffer.alloc(0), flags: TCP.ACK };
    const established = frame({ ...tcp, src: NAT4, dst: '10.0.0.30' });
    const established6 = frame({ ...tcp, src: NAT6, dst: 'fd00::30' });
    const reply = frame({ ...tcp, src: '10.0.0.20', sport: 8000, dst: NAT4, dport: PB });
    const other = frame({ ...tcp, src: '10.0.0.1', sport: 40000, dst: '10.0.0.30', dport: 8001 });
    // The loop holds: two passes give the packet back.
    for (const pkt of [established, established6, reply]) {
      const twice = testRun(lb.root.rootFd, pkt, 2, ifindex);
      if (twice.retval !== XDP.TX || !twice.data.subarray(12).equals(pkt.subarray(12))) throw new Error('the bench loop of flows does not close');
    }

    const cases = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: plain.programFd('xdp_plain_pass'), pkt: other, verdict: XDP.PASS },
      { name: 'not for a VIP', what: 'root -> xdp_lb, TCP to another port: XDP_PASS', fd: lb.root.rootFd, pkt: other, verdict: XDP.PASS },
      { name: 'established flow', what: 'TCP ACK of a tracked flow: rewrite, FIB, XDP_TX', fd: lb.root.rootFd, pkt: established, verdict: XDP.TX, goal: GOALS.established },
      { name: 'new flow (SYN)', what: 'Maglev pick, NAT port, new entries, XDP_TX', fd: fresh.root.rootFd, pkt: (round: number) => frame({ ...tcp, src: '10.0.0.1', sport: 40000 + round, dst: '10.0.0.30', flags: TCP.SYN }), repeat: Math.min(repeat, SYN_REPEAT), verdict: XDP.TX, goal: GOALS.syn },
      { name: 'reply', what: 'backend -> NAT port: rewritten back, XDP_TX', fd: lb.root.rootFd, pkt: reply, verdict: XDP.TX },
      { name: 'IPv6 established', what: 'TCP ACK of a tracked IPv6 flow, XDP_TX', fd: lb.root.rootFd, pkt: established6, verdict: XDP.TX },
    ].map((c) => ({ ...c, samples: [] as number[] }));
    // Round by round, so drifting machine noise lands on every case alike.
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        const pkt = typeof c.pkt === 'function' ? c.pkt(round) : c.pkt;
        const r = testRun(c.fd, pkt, c.repeat ?? repeat, ifindex);
        if (r.retval !== c.verdict) throw new Error(`${c.name}: returned ${r.retval}, expected ${c.verdict}`);
        c.samples.push(r.duration);
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
      const cp = lbInstance({ nat: LOOP.nat, vips: [] });
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
    return { rounds, repeat, cases: results, applyLargeMs: summarize(large), applyOneMs: summarize(one) };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}
