// Per-packet cost of the filter in slot 2, through the root, with 10,000
// IPv4 and 1,000 IPv6 prefixes listed: measured by the kernel with BPF_PROG_TEST_RUN against
// an empty XDP_PASS program (the floor) and a pass program in the same slot
// (what the dispatcher alone costs), round by round.
import { BpfObject, closeFd, testRun } from '../src/libbpf/index.js';
import { RootArray, ROOT_OBJECT } from '../src/root/array.js';
import { loadSlotProgram } from '../src/root/slot.js';
import { placeProgram } from '../src/root/place.js';
import { pinnedRoot } from '../test/helpers/pinned.js';
import { FILTER, hint6Bucket } from '../src/programs/filter/layout.js';
import { FilterMaps } from '../src/programs/filter/maps.js';
import { formatPrefix, parsePrefix, type Prefix } from '../src/programs/filter/prefix.js';
import { BPF } from '../test/helpers/cli.js';
import { ETH_IPV4, ETH_IPV6, PROTO, eth, ip4, ip6, pattern, tcp } from '../test/helpers/frames.js';
import { summarize, type Summary } from './stats.js';

export const CLEAN_GOAL_NS = 15;
export const PREFIX_COUNT = 10_000;
/** IPv6 prefixes listed as well: 2001:db8:N::/48. */
export const PREFIX6_COUNT = 1_000;
const XDP = { DROP: 1, PASS: 2, TX: 3 };

export interface FilterCase {
  name: string;
  what: string;
  ns: Summary;
  aboveFloor: number;
}

export interface FilterResult {
  rounds: number;
  repeat: number;
  prefixes: number;
  cases: FilterCase[];
  /** The Packet Too Big reply rewrites the frame, so it runs once per call
   *  (BPF_PROG_TEST_RUN does not restore the frame between repeats): median
   *  of single runs, against the floor run the same way. */
  ptb: { runs: number; ns: Summary; floor: Summary; aboveFloor: number };
  cleanAboveFloor: number;
  goalNs: number;
  pass: boolean;
}

/** 10,000 distinct IPv4 prefixes, /16 to /32, from a fixed seed, none of
 *  them in 192.0.0.0/16 (where the clean source lives). */
function prefixes(): Prefix[] {
  let state = 0x5eed;
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  const out = new Map<string, Prefix>();
  while (out.size < PREFIX_COUNT) {
    const len = 16 + (next() % 17);
    const addr = Buffer.alloc(4);
    addr.writeUInt32BE(len === 32 ? next() : (next() & ~(0xffffffff >>> len)) >>> 0);
    if (addr[0] === 192 && addr[1] === 0) continue;
    const p: Prefix = { family: 4, addr, len };
    out.set(formatPrefix(p), p);
  }
  return [...out.values()];
}

function covers(p: Prefix, addr: Buffer): boolean {
  const mask = p.len ? (0xffffffff << (32 - p.len)) >>> 0 : 0;
  return ((addr.readUInt32BE(0) & mask) >>> 0) === p.addr.readUInt32BE(0);
}

const tcpFrame = (src: string) => Buffer.concat([eth(ETH_IPV4), ip4(20, { src, proto: PROTO.TCP }), tcp()]);
const tcp6Frame = (src: string) => Buffer.concat([eth(ETH_IPV6), ip6(20, { src, nexthdr: PROTO.TCP }), tcp()]);

export function measureFilter(rounds: number, repeat: number, ptbRuns = 2001): FilterResult {
  const cleanup: Array<() => void> = [];
  try {
    const plain = BpfObject.open(BPF('xdp_plain.o'));
    cleanup.push(() => plain.close());
    plain.loadOnly('xdp_plain_pass');
    plain.load();
    const floorFd = plain.programFd('xdp_plain_pass');

    const passRoot = RootArray.load(BPF(ROOT_OBJECT));
    cleanup.push(() => passRoot.close());
    const passFd = loadSlotProgram(passRoot, { object: BPF('xdp_fixtures.o'), program: 'xdp_pass_test', slot: FILTER.defaultSlot });
    passRoot.fill(FILTER.defaultSlot, passFd);
    closeFd(passFd);

    // A root attached (skb mode) to a veth of a namespace of its own.
    const pinned = pinnedRoot();
    cleanup.push(() => pinned.close());
    const root = pinned.root;
    placeProgram(FILTER, [pinned.iface], FILTER.defaultSlot);
    const maps = FilterMaps.open(pinned.iface);
    cleanup.push(() => maps.close());
    maps.setConfig({ frags_drop: true, ptb_max_pps: 0xffffffff });
    const list = prefixes();
    for (const p of list) maps.add(p, 'bench');

    // A source in a /16 that holds listed prefixes, yet matched by none:
    // the trie is walked and finds nothing.
    const near = Buffer.alloc(4);
    for (let a = list.find((p) => p.len >= 24)!.addr.readUInt32BE(0); ; a++) {
      near.writeUInt32BE(a >>> 0);
      if (!list.some((p) => covers(p, near))) break;
    }
    const listed = list.find((p) => p.len === 24)!;
    for (let n = 0; n < PREFIX6_COUNT; n++) maps.add(parsePrefix(`2001:db8:${n.toString(16)}::/48`), 'bench');
    // An IPv6 source whose /32 falls in a clear hint bucket.
    let clean6 = 0x2a000000;
    while (hint6Bucket(clean6) === hint6Bucket(0x20010db8)) clean6++;
    const clean6Src = `${(clean6 >>> 16).toString(16)}:${(clean6 & 0xffff).toString(16)}::1`;

    const cases = [
      { name: 'floor', what: 'xdp_plain_pass alone (empty XDP_PASS)', fd: floorFd, pkt: tcpFrame('192.0.2.1'), expect: XDP.PASS },
      { name: 'dispatch', what: 'root -> slot 2 xdp_pass_test', fd: passRoot.rootFd, pkt: tcpFrame('192.0.2.1'), expect: XDP.PASS },
      { name: 'clean', what: 'root -> filter: IPv4 TCP from an unlisted /16', fd: root.rootFd, pkt: tcpFrame('192.0.2.1'), expect: XDP.PASS },
      { name: 'clean, listed /16', what: 'root -> filter: IPv4 TCP, trie walked, no match', fd: root.rootFd, pkt: tcpFrame([...near].join('.')), expect: XDP.PASS },
      { name: 'listed source', what: `root -> filter: IPv4 TCP from ${formatPrefix(listed)} (drop)`, fd: root.rootFd, pkt: tcpFrame([...listed.addr].join('.')), expect: XDP.DROP },
      { name: 'clean IPv6', what: `root -> filter: IPv6 TCP from ${clean6Src} (hint bucket clear)`, fd: root.rootFd, pkt: tcp6Frame(clean6Src), expect: XDP.PASS },
      { name: 'clean IPv6, listed /32', what: 'root -> filter: IPv6 TCP from 2001:db8:ffff::1, trie walked', fd: root.rootFd, pkt: tcp6Frame('2001:db8:ffff::1'), expect: XDP.PASS },
      { name: 'listed IPv6 source', what: 'root -> filter: IPv6 TCP from 2001:db8:7::/48 (drop)', fd: root.rootFd, pkt: tcp6Frame('2001:db8:7::1'), expect: XDP.DROP },
    ].map((c) => ({ ...c, samples: [] as number[] }));

    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        const r = testRun(c.fd, c.pkt, repeat);
        if (r.retval !== c.expect) throw new Error(`${c.name}: ${c.what} returned ${r.retval}, expected ${c.expect}`);
        c.samples.push(r.duration);
      }
    }
    const summaries = cases.map((c) => ({ name: c.name, what: c.what, ns: summarize(c.samples) }));
    const floor = summaries[0].ns.median;
    const results = summaries.map((c) => ({ ...c, aboveFloor: c.ns.median - floor }));

    // First fragments of a 1500-byte datagram, one run per call.
    const fragment = Buffer.concat([eth(ETH_IPV4), ip4(1480, { src: '192.0.2.1', mf: true }), pattern(1480)]);
    const ptbSamples: number[] = [];
    const floorSamples: number[] = [];
    for (let i = 0; i < ptbRuns; i++) {
      floorSamples.push(testRun(floorFd, fragment).duration);
      const r = testRun(root.rootFd, fragment);
      if (r.retval !== XDP.TX) throw new Error(`first fragment: returned ${r.retval}, expected XDP_TX (${XDP.TX})`);
      ptbSamples.push(r.duration);
    }
    const ptbNs = summarize(ptbSamples);
    const ptbFloor = summarize(floorSamples);

    const clean = results.find((c) => c.name === 'clean')!.aboveFloor;
    return {
      rounds, repeat, prefixes: list.length, cases: results,
      ptb: { runs: ptbRuns, ns: ptbNs, floor: ptbFloor, aboveFloor: ptbNs.median - ptbFloor.median },
      cleanAboveFloor: clean, goalNs: CLEAN_GOAL_NS, pass: clean <= CLEAN_GOAL_NS,
    };
  } finally {
    for (const close of cleanup.reverse()) close();
  }
}
