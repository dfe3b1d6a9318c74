// Direct server return and the backend's decapsulator, ns per packet with
// BPF_PROG_TEST_RUN through the root, against an empty XDP_PASS program
// run the same way (the floor), in a network namespace whose neighbours
// answer the balancer's FIB lookups.
//
// A test run repeats on one buffer, which the programs rewrite, so each
// case is built to repeat itself:
// - dsr-l2 leaves the packet as it was but for the MACs it already has:
//   every pass after the first is an established flow's.
// - An encapsulating VIP grows the packet, which no buffer survives many
//   times (256 bytes of headroom). So the root holds the decapsulator in
//   slot 6 and the balancer in slot 7, and the packet is what the balancer
//   sends: each pass takes the outer header off and puts it back on. The
//   balancer's share is that loop less the decapsulator alone, plus the
//   root's own cost (the loop counts the root once).
// - The decapsulator alone runs on a packet nested in as many tunnels to
//   it as the buffer holds, one taken off per pass, as many passes as
//   layers; the floor is run with the same repeat count.
// - A SYN to a DSR VIP always takes the new-flow path (Maglev, and an
//   update of the connection table that takes a fresh LRU node and frees
//   the old one, as an insert does): the same SYN again is a new flow's
//   work, but for the lookups it finds warm. So these are also measured as
//   single runs with a new flow each (cold, a system call apart), against
//   single runs of the floor; the NAT SYN that way too, to compare. So are
//   established flows (an ACK two calls after its flow's SYN), which is how
//   a balancer that cannot loop its own output can be timed alike.
import { BpfMap, BpfObject, closeFd, progInfo, testRun } from '../src/libbpf/index.js';
import { ifNameToIndex } from '../src/sys/netdev.js';
import { RootArray, ROOT_OBJECT } from '../src/root/array.js';
import { loadSlotProgram } from '../src/root/slot.js';
import { validateConfig } from '../src/programs/lb/config.js';
import { applyConfig } from '../src/programs/lb/apply.js';
import type { LbMaps } from '../src/programs/lb/state.js';
import { MAPS as DECAP_MAPS, OBJECT as DECAP_OBJECT, PROGRAM as DECAP_PROGRAM, encodeConfig, type DecapConfig } from '../src/programs/decap/layout.js';
import { u32 } from '../src/programs/lb/layout.js';
import { BPF } from '../test/helpers/cli.js';
import { uniqueTag } from '../test/helpers/netns.js';
import { closeLb, enterLabNamespace, fillLb, frame, type L4Frame, sysctlIn, TCP } from '../test/helpers/lb.js';
import { encapHash, encapsulate, gueSport, type Outer } from '../test/helpers/encap.js';
import { summarize, type Summary } from './stats.js';

const XDP = { PASS: 2, TX: 3 };
const LB_MAC = '02:00:00:00:00:10';
const BE_MAC = '02:00:00:00:00:20';
const SRC4 = '10.0.0.99';
const SRC6 = 'fd00::99';
const BE4 = '10.0.0.20';
const BE6 = 'fd00::20';
export const DSR_GOALS = { established: 45, syn: 500, decap: 15 } as const;
/** What a frame may hold in a test run's one page. */
const FRAME_MAX = 3400;

export interface DsrCase {
  name: string;
  what: string;
  ns: Summary;
  aboveFloor: number;
  repeat: number;
  /** The balancer's share of a decapsulate-and-encapsulate loop. */
  estimate?: number;
  goal?: number;
}

export interface DsrBenchResult {
  rounds: number;
  repeat: number;
  singleRuns: number;
  cases: DsrCase[];
}

const VIPS = [
  { address: '10.0.0.30', port: 8000, forwarding: 'dsr-l2', backends: [{ address: BE4 }] },
  { address: '10.0.0.31', port: 8000, forwarding: 'ipip', backends: [{ address: BE4 }] },
  { address: 'fd00::31', port: 8000, forwarding: 'ipip', backends: [{ address: BE6 }] },
  { address: '10.0.0.32', port: 8000, forwarding: 'ipip', backends: [{ address: BE6 }] },
  { address: '10.0.0.33', port: 8000, forwarding: 'gue', backends: [{ address: BE4 }] },
  { address: 'fd00::33', port: 8000, forwarding: 'gue', backends: [{ address: BE6 }] },
  { address: '10.0.0.34', port: 8000, backends: [{ address: BE4 }] },
];
const CONFIG = { nat: { source_ipv4: SRC4, port_min: 1024, port_max: 65535 }, encap_source_ipv4: SRC4, encap_source_ipv6: SRC6, vips: VIPS };

export interface Instance {
  root: RootArray;
  close(): void;
}

/** A root with, if asked, the balancer in slot 7 (`lb` fills its tables)
 *  and the decapsulator in slot 6 with `decap` as its config. */
export function benchRoot(lb?: (fds: LbMaps) => void, decap?: DecapConfig): Instance {
  const root = RootArray.load(BPF(ROOT_OBJECT));
  const closers: Array<() => void> = [() => root.close()];
  const close = () => closers.reverse().forEach((c) => c());
  try {
    if (lb) {
      const fds = fillLb(root, 7);
      closers.push(() => closeLb(fds));
      lb(fds);
    }
    if (decap) {
      const fd = loadSlotProgram(root, { object: BPF(DECAP_OBJECT), program: DECAP_PROGRAM, slot: 6 });
      root.fill(6, fd);
      for (const id of progInfo(fd).mapIds) {
        const m = BpfMap.byId(id)!;
        if (m.name === DECAP_MAPS.config) m.update(u32(0), encodeConfig(decap));
        m.close();
      }
      closeFd(fd);
    }
    return { root, close };
  } catch (err) {
    close();
    throw err;
  }
}

/** The balancer with CONFIG and, if asked, the decapsulator (tunnel
 *  addresses: the backends'). */
function instance(withDecap: boolean, withLb = true): Instance {
  return benchRoot(
    withLb ? (fds) => applyConfig(fds, validateConfig(CONFIG)) : undefined,
    withDecap ? { address_ipv4: BE4, address_ipv6: BE6, gue_port: 6080 } : undefined,
  );
}

const tcp = (src: string, dst: string, sport: number, flags: number = TCP.ACK): L4Frame => ({
  src, dst, sport, dport: 8000, proto: 'tcp', flags, srcMac: BE_MAC, dstMac: LB_MAC, payload: Buffer.alloc(0),
});
const flowOf = (f: L4Frame) => ({ src: f.src, dst: f.dst, sport: f.sport, dport: f.dport, proto: f.proto });

/** What the balancer sends for `f` to the backend at `be` the `kind` way. */
function encapsulated(f: L4Frame, be: string, kind: 'ipip' | 'gue'): Buffer {
  const six = be.includes(':');
  return encapsulate(frame(f).subarray(14), {
    src: six ? SRC6 : SRC4, dst: be, srcMac: LB_MAC, dstMac: BE_MAC,
    kind: kind === 'ipip' ? 'ipip' : { guePort: 6080, sport: gueSport(flowOf(f)) },
    flowLabel: encapHash(flowOf(f)) & 0xfffff,
  });
}

/** `inner` (an IP packet) in as many tunnels to the backend as fit. */
function nested(inner: Buffer, outer: Omit<Outer, 'srcMac' | 'dstMac'>, layer: number): { frame: Buffer; layers: number; inner: Buffer } {
  let full: Buffer = Buffer.alloc(0);
  let ip: Buffer = inner;
  let layers = 0;
  while (14 + ip.length + layer <= FRAME_MAX) {
    full = encapsulate(ip, { ...outer, srcMac: LB_MAC, dstMac: BE_MAC });
    ip = full.subarray(14);
    layers++;
  }
  return { frame: full, layers, inner };
}

export function measureDsr(rounds: number, repeat: number, singleRuns: number): DsrBenchResult {
  const name = `xdsb-${uniqueTag()}`;
  const leave = enterLabNamespace(name, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ...['lbA', 'lbAp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', `${SRC4}/24`, 'dev', 'lbA'],
    ['addr', 'add', `${SRC6}/64`, 'dev', 'lbA', 'nodad'],
    ...[BE4, BE6, '10.0.0.1', 'fd00::1'].map((a) => ['neigh', 'replace', a, 'lladdr', BE_MAC, 'dev', 'lbA', 'nud', 'permanent']),
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
    const floorFd = plain.programFd('xdp_plain_pass');
    const lbOnly = instance(false);
    cleanup.push(lbOnly.close);
    const loop = instance(true);
    cleanup.push(loop.close);
    const decapOnly = instance(true, false);
    cleanup.push(decapOnly.close);
    const rootOnly = instance(false, false);
    cleanup.push(rootOnly.close);

    const client4 = '10.0.0.1';
    const client6 = 'fd00::1';
    // The loops: each must give its packet back after a pass.
    const l2 = frame({ ...tcp(client4, '10.0.0.30', 40000), srcMac: LB_MAC, dstMac: BE_MAC });
    const loops: Array<{ name: string; what: string; pkt: Buffer }> = [
      { name: 'ipip IPv4 in IPv4 established', what: 'TCP ACK of a tracked flow, outer IPv4 header pushed', pkt: encapsulated(tcp(client4, '10.0.0.31', 40001), BE4, 'ipip') },
      { name: 'ipip IPv6 in IPv6 established', what: 'outer IPv6 header, flow label from the flow', pkt: encapsulated(tcp(client6, 'fd00::31', 40002), BE6, 'ipip') },
      { name: 'ipip IPv4 in IPv6 established', what: 'an IPv4 VIP\'s IPv6 backend', pkt: encapsulated(tcp(client4, '10.0.0.32', 40003), BE6, 'ipip') },
      { name: 'gue over IPv4 established', what: 'outer IPv4 + UDP (checksum 0)', pkt: encapsulated(tcp(client4, '10.0.0.33', 40004), BE4, 'gue') },
      { name: 'gue over IPv6 established', what: 'outer IPv6 + UDP, checksum from the inner headers', pkt: encapsulated(tcp(client6, 'fd00::33', 40005), BE6, 'gue') },
      { name: 'ipip IPv4 in IPv4 SYN', what: 'a SYN: Maglev, the table updated, outer header pushed', pkt: encapsulated(tcp(client4, '10.0.0.31', 40006, TCP.SYN), BE4, 'ipip') },
      { name: 'gue over IPv4 SYN', what: 'a SYN: Maglev, the table updated, outer IPv4 + UDP', pkt: encapsulated(tcp(client4, '10.0.0.33', 40007, TCP.SYN), BE4, 'gue') },
      { name: 'gue over IPv6 SYN', what: 'a SYN: Maglev, the table updated, outer IPv6 + UDP', pkt: encapsulated(tcp(client6, 'fd00::33', 40008, TCP.SYN), BE6, 'gue') },
    ];
    const l2syn = frame({ ...tcp(client4, '10.0.0.30', 40009, TCP.SYN), srcMac: LB_MAC, dstMac: BE_MAC });
    const once = (fd: number, pkt: Buffer, times: number) => testRun(fd, pkt, times, ifindex);
    for (const pkt of [l2, l2syn]) {
      const r = once(lbOnly.root.rootFd, pkt, 2);
      if (r.retval !== XDP.TX || !r.data.equals(pkt)) throw new Error('dsr-l2: the packet does not come back as it went');
    }
    for (const l of loops) {
      const r = once(loop.root.rootFd, l.pkt, 2);
      if (r.retval !== XDP.TX || !r.data.equals(l.pkt)) throw new Error(`${l.name}: the decapsulate-encapsulate loop does not close`);
    }

    // The decapsulator alone, one layer a pass.
    const inner4 = frame(tcp(client4, '10.0.0.31', 40100)).subarray(14);
    const inner6 = frame(tcp(client6, 'fd00::31', 40101)).subarray(14);
    const decaps = [
      { name: 'decap ipip, IPv4 in IPv4', ...nested(inner4, { src: SRC4, dst: BE4, kind: 'ipip' }, 20) },
      { name: 'decap ipip, IPv6 in IPv6', ...nested(inner6, { src: SRC6, dst: BE6, kind: 'ipip' }, 40) },
      { name: 'decap gue, IPv4 over IPv4', ...nested(inner4, { src: SRC4, dst: BE4, kind: { guePort: 6080, sport: 50000 } }, 28) },
      { name: 'decap gue, IPv6 over IPv6', ...nested(inner6, { src: SRC6, dst: BE6, kind: { guePort: 6080, sport: 50000 } }, 48) },
    ];
    for (const d of decaps) {
      const r = once(decapOnly.root.rootFd, d.frame, d.layers);
      if (r.retval !== XDP.PASS || !r.data.subarray(14).equals(d.inner)) {
        throw new Error(`${d.name}: ${d.layers} passes do not give the inner packet back`);
      }
    }

    interface Case { name: string; what: string; fd: number; pkt: Buffer; repeat: number; verdict: number; goal?: number; group: string; samples: number[] }
    const cases: Case[] = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: floorFd, pkt: l2, repeat, verdict: XDP.PASS, group: 'main', samples: [] },
      { name: 'root, empty slots', what: 'xdp_root alone', fd: rootOnly.root.rootFd, pkt: l2, repeat, verdict: XDP.PASS, group: 'main', samples: [] },
      { name: 'dsr-l2 established', what: 'TCP ACK of a tracked flow: destination MAC, XDP_TX', fd: lbOnly.root.rootFd, pkt: l2, repeat, verdict: XDP.TX, goal: DSR_GOALS.established, group: 'main', samples: [] },
      { name: 'dsr-l2 SYN', what: 'a SYN: Maglev, the table updated, destination MAC', fd: lbOnly.root.rootFd, pkt: l2syn, repeat, verdict: XDP.TX, goal: DSR_GOALS.syn, group: 'main', samples: [] },
      ...loops.map((l) => ({ name: `${l.name} (loop)`, what: `decapsulator + balancer: ${l.what}`, fd: loop.root.rootFd, pkt: l.pkt, repeat, verdict: XDP.TX, group: 'main', samples: [] as number[] })),
      ...decaps.flatMap((d) => [
        { name: `floor x${d.layers}`, what: `xdp_plain_pass, ${d.layers} repeats`, fd: floorFd, pkt: d.frame, repeat: d.layers, verdict: XDP.PASS, group: d.name, samples: [] as number[] },
        { name: d.name, what: `one layer of ${d.layers} taken off a pass, XDP_PASS`, fd: decapOnly.root.rootFd, pkt: d.frame, repeat: d.layers, verdict: XDP.PASS, goal: DSR_GOALS.decap, group: d.name, samples: [] as number[] },
      ]),
    ];
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        // A run of a hundred passes would carry its first pass's cold
        // caches (maps, counters, the program) on every pass: one run
        // before it warms them.
        if (c.repeat < 1000) once(c.fd, c.pkt, c.repeat);
        const r = once(c.fd, c.pkt, c.repeat);
        if (r.retval !== c.verdict) throw new Error(`${c.name}: returned ${r.retval}, expected ${c.verdict}`);
        c.samples.push(r.duration);
      }
    }

    // New flows, one run each, a new client port every time.
    const syns = [
      { name: 'dsr-l2 new flow, cold', vip: '10.0.0.30' },
      { name: 'ipip new flow, cold', vip: '10.0.0.31' },
      { name: 'gue new flow, cold', vip: '10.0.0.33' },
      { name: 'gue over IPv6 new flow, cold', vip: 'fd00::33' },
      { name: 'NAT new flow, cold', vip: '10.0.0.34' },
    ].map((s) => ({ ...s, samples: [] as number[] }));
    // Established flows the same way, to compare with the SYNs (and with
    // other balancers timed in single runs): the flow's SYN just before, so
    // its entry is on this CPU (the tables are per CPU), then its ACK.
    const established = [
      { name: 'dsr-l2 established, cold', vip: '10.0.0.30' },
      { name: 'ipip established, cold', vip: '10.0.0.31' },
      { name: 'NAT established, cold', vip: '10.0.0.34' },
    ].map((s) => ({ ...s, samples: [] as number[] }));
    const floorSingle: number[] = [];
    const sent = (what: string, pkt: Buffer) => {
      const r = once(lbOnly.root.rootFd, pkt, 1);
      if (r.retval !== XDP.TX) throw new Error(`${what}: returned ${r.retval}, expected XDP_TX`);
      return r.duration;
    };
    for (let i = 0; i < singleRuns; i++) {
      const src = (six: boolean) => (six ? `fd00::1:${(i >> 16) + 1}` : `10.1.${i >> 8 & 255}.${i & 255}`);
      floorSingle.push(once(floorFd, l2, 1).duration);
      for (const s of syns) {
        const six = s.vip.includes(':');
        s.samples.push(sent(s.name, frame({ ...tcp(six ? client6 : client4, s.vip, 1024 + (i % 60000), TCP.SYN), src: src(six) })));
      }
      for (const s of established) {
        const flow = { ...tcp(client4, s.vip, 1024 + (i % 60000)), src: `10.2.${i >> 8 & 255}.${i & 255}` };
        sent(s.name, frame({ ...flow, flags: TCP.SYN }));
        once(floorFd, l2, 1);
        s.samples.push(sent(s.name, frame(flow)));
      }
    }

    const median = (group: string, name: string) => summarize(cases.find((c) => c.group === group && c.name === name)!.samples).median;
    const floor = median('main', 'floor');
    const rootAbove = median('main', 'root, empty slots') - floor;
    /** The decapsulator's own cost for a loop's outer header (IPv4 in
     *  IPv6 comes off like IPv6 in IPv6: the same outer header). */
    const decapOf = (loopName: string) => {
      const kind = loopName.startsWith('gue') ? 'gue' : 'ipip';
      const six = loopName.includes('in IPv6') || loopName.includes('over IPv6');
      const d = decaps.find((x) => x.name.startsWith(`decap ${kind}`) && x.name.includes(six ? 'IPv6' : 'IPv4'))!;
      return median(d.name, d.name) - median(d.name, `floor x${d.layers}`);
    };
    const results: DsrCase[] = cases.filter((c) => !c.name.startsWith('floor x')).map((c) => {
      const ns = summarize(c.samples);
      const groupFloor = c.group === 'main' ? floor : median(c.group, `floor x${c.repeat}`);
      const out: DsrCase = { name: c.name, what: c.what, ns, aboveFloor: ns.median - groupFloor, repeat: c.repeat };
      if (c.goal) out.goal = c.goal;
      if (c.name.endsWith('(loop)')) {
        // Loop above floor, less the decapsulator's share, plus the root's
        // (counted once in the loop, once in the decapsulator's share).
        out.estimate = ns.median - floor - decapOf(c.name) + rootAbove;
        out.goal = c.name.includes('SYN') ? DSR_GOALS.syn : DSR_GOALS.established;
      }
      return out;
    });
    const floorS = summarize(floorSingle);
    for (const s of syns) {
      const ns = summarize(s.samples);
      results.push({ name: s.name, what: `a SYN of a new flow, one run per call, ${singleRuns} calls; floor run alike: ${floorS.median} ns`, ns, aboveFloor: ns.median - floorS.median, repeat: 1 });
    }
    for (const s of established) {
      const ns = summarize(s.samples);
      results.push({ name: s.name, what: `an ACK of a flow whose SYN ran two calls before, one run per call, ${singleRuns} calls`, ns, aboveFloor: ns.median - floorS.median, repeat: 1 });
    }
    return { rounds, repeat, singleRuns, cases: results };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}
