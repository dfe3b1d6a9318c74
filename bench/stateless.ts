// Stateless balancing: the balancer's cost for a stateless VIP's packets
// (a SYN and an established flow's, with and without a previous backend)
// and the decapsulator's for what chaining adds (the socket lookup, and
// sending a packet on), ns per packet with BPF_PROG_TEST_RUN through the
// root, against an empty XDP_PASS program run the same way (the floor), in
// a network namespace whose neighbours answer the FIB lookups and which
// holds a real TCP connection for bpf_skc_lookup_tcp to find.
//
// As in bench/dsr.ts, an encapsulating balancer is measured in a loop that
// gives its packet back: the root holds the decapsulator in slot 6 and the
// balancer in slot 7, and the packet is what the balancer sends (GUE to
// the backend, variant 1, or variant 0 naming the previous backend). Its
// share is the loop less the decapsulator's (a variant-1 layer, measured
// alone on nested tunnels) plus the root's own cost (counted once in each).
// - A SYN with a previous backend is delivered without a lookup (a SYN is
//   always ours); an ACK with one is looked up, finds the connection, and
//   is delivered: the two loops differ by the lookup (and by the SYN's
//   new-connection counters on the balancer, which the lookup estimate
//   loses).
// - A chained packet leaves for another backend and cannot repeat: it is
//   measured as single runs (one run per call), against single runs of the
//   floor; so are a new flow's SYNs to a stateless VIP and to a gue VIP
//   with a connection table, each from a new client.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { BpfObject, testRun } from '../src/libbpf/index.js';
import { ifNameToIndex } from '../src/sys/netdev.js';
import { validateConfig } from '../src/programs/lb/config.js';
import { applyConfig } from '../src/programs/lb/apply.js';
import { readState } from '../src/programs/lb/state.js';
import { BPF } from '../test/helpers/cli.js';
import { uniqueTag } from '../test/helpers/netns.js';
import { enterLabNamespace, frame, type L4Frame, sysctlIn, TCP } from '../test/helpers/lb.js';
import { encapsulate, gueSport, gueVariant0 } from '../test/helpers/encap.js';
import { benchRoot, type Instance } from './dsr.js';
import { summarize, type Summary } from './stats.js';

const XDP = { PASS: 2, TX: 3 };
const LB_MAC = '02:00:00:00:00:10';
const BE_MAC = '02:00:00:00:00:20';
const SRC4 = '10.0.0.99';
const BE4 = '10.0.0.20';
const PREV4 = '10.0.0.21';
const CLIENT4 = '10.0.0.1';
const VIP_PLAIN = '10.0.0.40'; // stateless, no previous backend
const VIP_PREV = '10.0.0.41'; // stateless, every entry naming PREV4 (generation 2)
const VIP_TRACKED = '10.0.0.33'; // gue with a connection table, to compare
const PORT = 8000;
export const STATELESS_GOALS = { lb: 45, synRatio: 1.1, decap: 40 } as const;
const FRAME_MAX = 3400;

export interface StatelessCase {
  name: string;
  what: string;
  ns: Summary;
  aboveFloor: number;
  repeat: number;
  /** The balancer's share of a loop, or the decapsulator's lookup estimate. */
  estimate?: number;
  goal?: number;
}

export interface StatelessBenchResult {
  rounds: number;
  repeat: number;
  singleRuns: number;
  cases: StatelessCase[];
  /** The balancer's share for a stateless SYN over an established packet's. */
  synRatio: number;
}

const vip = (address: string, backends: string[], stateless = true) => ({
  address, port: PORT, forwarding: 'gue', ...(stateless ? { stateless: true } : {}), backends: backends.map((a) => ({ address: a })),
});
const config = (prevVipBackend: string) => ({
  encap_source_ipv4: SRC4,
  vips: [vip(VIP_PLAIN, [BE4]), vip(VIP_PREV, [prevVipBackend]), vip(VIP_TRACKED, [BE4], false)],
});

function instance(withDecap: boolean, withLb = true): Instance {
  return benchRoot(
    withLb
      ? (fds) => {
          // Two changes: VIP_PREV's entries all move from PREV4 to BE4.
          applyConfig(fds, validateConfig(config(PREV4)));
          applyConfig(fds, validateConfig(config(BE4)));
          const state = readState(fds);
          if (state.slots.get(state.vips.get(`tcp:${VIP_PREV}:${PORT}`)!.id)!.readUInt16LE(2) === 0xffff) throw new Error('the stateless VIP\'s entries name no previous backend');
        }
      : undefined,
    withDecap ? { address_ipv4: BE4, gue_port: 6080 } : undefined,
  );
}

const tcp = (src: string, dst: string, sport: number, flags: number = TCP.ACK): L4Frame => ({
  src, dst, sport, dport: PORT, proto: 'tcp', flags, srcMac: BE_MAC, dstMac: LB_MAC, payload: Buffer.alloc(0),
});
const flowOf = (f: L4Frame) => ({ src: f.src, dst: f.dst, sport: f.sport, dport: f.dport, proto: f.proto });

/** What the balancer sends for `f` to BE4: variant 1, or variant 0 naming `prev`. */
function fromBalancer(f: L4Frame, prev?: string, to = BE4): Buffer {
  return encapsulate(frame(f).subarray(14), {
    src: SRC4, dst: to, srcMac: LB_MAC, dstMac: BE_MAC,
    kind: { guePort: 6080, sport: gueSport(flowOf(f)), ...(prev ? { gueHeader: gueVariant0(4, prev, 2) } : {}) },
  });
}

/** A connection from CLIENT4 to VIP_PREV:PORT in this namespace: its client port. */
async function realConnection(server: Server, sockets: Socket[]): Promise<number> {
  await new Promise<void>((resolve) => server.listen({ port: PORT, host: VIP_PREV }, resolve));
  const c = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: VIP_PREV, port: PORT, localAddress: CLIENT4 }, () => resolve(s));
    s.on('error', reject);
  });
  sockets.push(c);
  return c.localPort!;
}

export async function measureStateless(rounds: number, repeat: number, singleRuns: number): Promise<StatelessBenchResult> {
  const name = `xslb-${uniqueTag()}`;
  const leave = enterLabNamespace(name, [
    ['link', 'add', 'lbA', 'address', LB_MAC, 'type', 'veth', 'peer', 'name', 'lbAp'],
    ...['lbA', 'lbAp', 'lo'].map((d) => ['link', 'set', d, 'up']),
    ['addr', 'add', `${SRC4}/24`, 'dev', 'lbA'],
    ...[VIP_PREV, CLIENT4].map((a) => ['addr', 'add', `${a}/32`, 'dev', 'lo']),
    ...[BE4, PREV4].map((a) => ['neigh', 'replace', a, 'lladdr', BE_MAC, 'dev', 'lbA', 'nud', 'permanent']),
  ]);
  const cleanup: Array<() => void> = [leave];
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
  });
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  try {
    const ifindex = ifNameToIndex('lbA');
    sysctlIn(name, 'net.ipv4.conf.all.forwarding', '1');
    const clientPort = await realConnection(server, sockets);
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
    const once = (fd: number, pkt: Buffer, times: number) => testRun(fd, pkt, times, ifindex);

    const loops = [
      { name: 'stateless established', what: 'TCP ACK: the entry by the flow hash, outer IPv4 + UDP (variant 1)', pkt: fromBalancer(tcp(CLIENT4, VIP_PLAIN, 40001)) },
      { name: 'stateless SYN', what: 'a SYN: the same work, and new-connection counters', pkt: fromBalancer(tcp(CLIENT4, VIP_PLAIN, 40002, TCP.SYN)) },
      { name: 'stateless SYN, previous backend', what: 'a SYN whose entry names a previous backend: GUE variant 0 (12 bytes more)', pkt: fromBalancer(tcp(CLIENT4, VIP_PREV, 40003, TCP.SYN), PREV4) },
      { name: 'stateless established, previous backend', what: 'an ACK of the real connection: variant 0; the decapsulator looks it up, finds it', pkt: fromBalancer(tcp(CLIENT4, VIP_PREV, clientPort), PREV4) },
    ];
    for (const l of loops) {
      const r = once(loop.root.rootFd, l.pkt, 2);
      if (r.retval !== XDP.TX || !r.data.equals(l.pkt)) throw new Error(`${l.name}: the decapsulate-encapsulate loop does not close`);
    }
    // The decapsulator alone, a variant-1 layer a pass.
    const inner = frame(tcp(CLIENT4, VIP_PLAIN, 40100)).subarray(14);
    let nested: Buffer = inner;
    let layers = 0;
    while (14 + nested.length + 28 <= FRAME_MAX) {
      nested = encapsulate(nested, { src: SRC4, dst: BE4, srcMac: LB_MAC, dstMac: BE_MAC, kind: { guePort: 6080, sport: 50000 } }).subarray(14);
      layers++;
    }
    const nestedFrame = Buffer.concat([frame(tcp(CLIENT4, VIP_PLAIN, 40100)).subarray(0, 14), nested]);
    {
      const r = once(decapOnly.root.rootFd, nestedFrame, layers);
      if (r.retval !== XDP.PASS || !r.data.subarray(14).equals(inner)) throw new Error(`decap: ${layers} passes do not give the inner packet back`);
    }
    // Chained: an ACK of no connection here, naming PREV4, leaves for it.
    const stray = fromBalancer(tcp(CLIENT4, VIP_PREV, 40200), PREV4);
    const owned = fromBalancer(tcp(CLIENT4, VIP_PREV, clientPort), PREV4);
    const plainGue = fromBalancer(tcp(CLIENT4, VIP_PLAIN, 40201));
    {
      const r = once(decapOnly.root.rootFd, stray, 1);
      // Out as variant 1 (12 bytes less) to PREV4 (the outer destination).
      if (r.retval !== XDP.TX || r.data.length !== stray.length - 12 || r.data.subarray(30, 34).join('.') !== PREV4) {
        throw new Error(`decap chaining: returned ${r.retval}, ${r.data.length} bytes; expected XDP_TX to ${PREV4}`);
      }
      if (once(decapOnly.root.rootFd, owned, 1).retval !== XDP.PASS) throw new Error('decap: the real connection\'s segment is not delivered');
    }

    interface Case { name: string; what: string; fd: number; pkt: Buffer; repeat: number; verdict: number; group: string; samples: number[] }
    const cases: Case[] = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: floorFd, pkt: loops[0].pkt, repeat, verdict: XDP.PASS, group: 'main', samples: [] },
      { name: 'root, empty slots', what: 'xdp_root alone', fd: rootOnly.root.rootFd, pkt: loops[0].pkt, repeat, verdict: XDP.PASS, group: 'main', samples: [] },
      ...loops.map((l) => ({ name: `${l.name} (loop)`, what: `decapsulator + balancer: ${l.what}`, fd: loop.root.rootFd, pkt: l.pkt, repeat, verdict: XDP.TX, group: 'main', samples: [] as number[] })),
      { name: `floor x${layers}`, what: `xdp_plain_pass, ${layers} repeats`, fd: floorFd, pkt: nestedFrame, repeat: layers, verdict: XDP.PASS, group: 'decap', samples: [] },
      { name: 'decap gue variant 1', what: `one layer of ${layers} taken off a pass, no lookup`, fd: decapOnly.root.rootFd, pkt: nestedFrame, repeat: layers, verdict: XDP.PASS, group: 'decap', samples: [] },
    ];
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        if (c.repeat < 1000) once(c.fd, c.pkt, c.repeat); // warm what one pass would carry cold
        const r = once(c.fd, c.pkt, c.repeat);
        if (r.retval !== c.verdict) throw new Error(`${c.name}: returned ${r.retval}, expected ${c.verdict}`);
        c.samples.push(r.duration);
      }
    }

    // Single runs: the decapsulator's three ways, and new flows' SYNs.
    const singles = [
      { name: 'decap chained, single runs', what: 'an ACK of no connection here, variant 0: looked up, sent on to the previous backend (XDP_TX)', fd: decapOnly.root.rootFd, verdict: XDP.TX, pkt: () => stray, goal: STATELESS_GOALS.decap },
      { name: 'decap delivered with lookup, single runs', what: 'an ACK of the real connection, variant 0: looked up, found, delivered', fd: decapOnly.root.rootFd, verdict: XDP.PASS, pkt: () => owned, goal: STATELESS_GOALS.decap },
      { name: 'decap variant 1, single runs', what: 'no previous backend: no lookup, delivered', fd: decapOnly.root.rootFd, verdict: XDP.PASS, pkt: () => plainGue },
      { name: 'stateless new flow, single runs', what: 'a SYN from a new client each call to the stateless VIP', fd: lbOnly.root.rootFd, verdict: XDP.TX, pkt: (i: number) => frame({ ...tcp(`10.1.${(i >> 8) & 255}.${i & 255}`, VIP_PLAIN, 1024 + (i % 60000), TCP.SYN) }) },
      { name: 'gue with a connection table, new flow, single runs', what: 'the same SYNs to a gue VIP that tracks its flows', fd: lbOnly.root.rootFd, verdict: XDP.TX, pkt: (i: number) => frame({ ...tcp(`10.2.${(i >> 8) & 255}.${i & 255}`, VIP_TRACKED, 1024 + (i % 60000), TCP.SYN) }) },
    ].map((s) => ({ ...s, samples: [] as number[] }));
    const floorSingle: number[] = [];
    for (let i = 0; i < singleRuns; i++) {
      floorSingle.push(once(floorFd, plainGue, 1).duration);
      for (const s of singles) {
        const r = once(s.fd, s.pkt(i), 1);
        if (r.retval !== s.verdict) throw new Error(`${s.name}: returned ${r.retval}, expected ${s.verdict}`);
        s.samples.push(r.duration);
      }
    }

    const median = (caseName: string) => summarize(cases.find((c) => c.name === caseName)!.samples).median;
    const floor = median('floor');
    const rootAbove = median('root, empty slots') - floor;
    const decapV1 = median('decap gue variant 1') - median(`floor x${layers}`);
    const results: StatelessCase[] = cases.filter((c) => !c.name.startsWith('floor x')).map((c) => {
      const ns = summarize(c.samples);
      const out: StatelessCase = { name: c.name, what: c.what, ns, aboveFloor: ns.median - (c.group === 'main' ? floor : median(`floor x${layers}`)), repeat: c.repeat };
      if (c.name.endsWith('(loop)') && !c.name.includes('established, previous')) {
        out.estimate = ns.median - floor - decapV1 + rootAbove;
        out.goal = STATELESS_GOALS.lb;
      }
      return out;
    });
    // The decapsulator with the lookup: a variant-1 layer plus what the
    // looked-up ACK's loop costs over the SYN's (same balancer work).
    const lookup = median('stateless established, previous backend (loop)') - median('stateless SYN, previous backend (loop)');
    results.find((c) => c.name === 'stateless established, previous backend (loop)')!.estimate = decapV1 + lookup;
    results.find((c) => c.name === 'stateless established, previous backend (loop)')!.goal = STATELESS_GOALS.decap;
    const floorS = summarize(floorSingle);
    for (const s of singles) {
      const ns = summarize(s.samples);
      results.push({ name: s.name, what: `${s.what}; ${singleRuns} calls, floor run alike: ${floorS.median} ns`, ns, aboveFloor: ns.median - floorS.median, repeat: 1, ...(s.goal ? { goal: s.goal } : {}) });
    }
    const share = (n: string) => results.find((c) => c.name === n)!.estimate!;
    return { rounds, repeat, singleRuns, cases: results, synRatio: share('stateless SYN (loop)') / share('stateless established (loop)') };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}
