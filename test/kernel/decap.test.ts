// The backend's decapsulator in a slot of a real root array, driven with
// BPF_PROG_TEST_RUN: every tunnel kind taken apart to exactly the client's
// packet (frames built here from scratch, outer checksums computed here),
// everything else untouched, malformed tunnels dropped and counted; its map
// structs against the object's BTF; and the balancer's own output taken
// apart again.
import { execFileSync } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfMap, closeFd, progInfo, testRun } from '../../src/libbpf/index.js';
import { RootArray } from '../../src/root/array.js';
import { loadSlotProgram } from '../../src/root/slot.js';
import { CONFIG_LAYOUT, MAPS, OBJECT, PROGRAM, STATS, STATS_SIZE, decodeStats, encodeConfig, type DecapConfig, type StatName } from '../../src/programs/decap/layout.js';
import { validateConfig } from '../../src/programs/lb/config.js';
import { applyConfig } from '../../src/programs/lb/apply.js';
import { u32 } from '../../src/programs/lb/layout.js';
import { BPF } from '../helpers/cli.js';
import { inetChecksum, mac } from '../helpers/packets.js';
import { ifNameToIndex } from '../../src/sys/netdev.js';
import { uniqueTag } from '../helpers/netns.js';
import { TCP, closeLb, enterLabNamespace, frame, lbMapsOf, sysctlIn, type L4Frame } from '../helpers/lb.js';
import { encapsulate, gueVariant0, type Outer } from '../helpers/encap.js';

const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3 };
const SLOT = 0;
const T4 = '10.0.0.2'; // the backend's tunnel addresses
const T6 = 'fd00::2';
const OUTER_MACS = { srcMac: '02:00:00:00:00:10', dstMac: '02:00:00:00:00:02' };

let root: RootArray;
let config: BpfMap;
let stats: BpfMap;

beforeEach(() => {
  root = RootArray.load();
  const fd = loadSlotProgram(root, { object: BPF(OBJECT), program: PROGRAM, slot: SLOT });
  try {
    root.fill(SLOT, fd);
    for (const id of progInfo(fd).mapIds) {
      const m = BpfMap.byId(id)!;
      if (m.name === MAPS.config) config = m;
      else if (m.name === MAPS.stats) stats = m;
      else m.close();
    }
  } finally {
    closeFd(fd);
  }
  configure({ address_ipv4: T4, address_ipv6: T6, gue_port: 6080 });
});
afterEach(() => {
  config?.close();
  stats?.close();
  root?.close();
});

const configure = (c: DecapConfig) => config.update(u32(0), encodeConfig(c));
const run = (pkt: Buffer) => testRun(root.rootFd, pkt);
const hex = (b: Buffer) => b.toString('hex');
function counts(values: Partial<Record<StatName, bigint>> = {}): Record<StatName, bigint> {
  return { ...(Object.fromEntries(STATS.map((s) => [s, 0n])) as Record<StatName, bigint>), ...values };
}
const read = () => decodeStats(stats.lookupPerCpu(u32(0))!);

const inner4: L4Frame = { src: '10.0.0.1', dst: '10.0.0.100', sport: 40000, dport: 80, proto: 'tcp', flags: TCP.ACK, payload: Buffer.from('to the backend, as sent') };
const inner6: L4Frame = { src: 'fd00::1', dst: 'fd00::100', sport: 40000, dport: 443, proto: 'udp', payload: Buffer.alloc(200, 6) };
const ipOf = (f: L4Frame) => frame(f).subarray(14);

/** The inner packet with the outer frame's MACs and the inner EtherType. */
function delivered(outer: Buffer, inner: Buffer, l2len = 14): Buffer {
  const l2 = Buffer.from(outer.subarray(0, l2len));
  l2.writeUInt16BE(inner[0] >> 4 === 4 ? 0x0800 : 0x86dd, l2len - 2);
  return Buffer.concat([l2, inner]);
}

/** `tags` VLAN tags (802.1ad outside, 802.1Q inside) after the MACs. */
function withVlans(f: Buffer, tags: number): Buffer {
  const parts = [f.subarray(0, 12)];
  for (let i = 0; i < tags; i++) parts.push(Buffer.from([i === tags - 1 ? 0x81 : 0x88, i === tags - 1 ? 0x00 : 0xa8, 0x00, 10 + i]));
  parts.push(f.subarray(12));
  return Buffer.concat(parts);
}

/** A GUE variant-0 header: protocol, Hlen words of optional fields (private data), flags 0. */
function gue0(proto: number, opts: Buffer = Buffer.alloc(0), control = false): Buffer {
  const h = Buffer.alloc(4);
  h[0] = (control ? 0x20 : 0) | (opts.length / 4);
  h[1] = proto;
  return Buffer.concat([h, opts]);
}

describe('decapsulator layouts against BTF', () => {
  const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', BPF(OBJECT)], { encoding: 'utf8', maxBuffer: 64 << 20 }));
  const struct = (name: string) => {
    const s = dump.types.find((t: { kind: string; name: string }) => t.kind === 'STRUCT' && t.name === name);
    return { size: s.size, offsets: Object.fromEntries(s.members.map((m: { name: string; bits_offset: number }) => [m.name, m.bits_offset / 8])) };
  };
  it('struct decap_config', () => {
    const { size, ...offsets } = CONFIG_LAYOUT;
    expect(struct('decap_config')).toEqual({ size, offsets: { ...offsets, pad: 23 } });
  });
  it('struct decap_stats: the counters, in order', () => {
    expect(struct('decap_stats')).toEqual({ size: STATS_SIZE, offsets: Object.fromEntries(STATS.map((s, i) => [s, i * 8])) });
  });
});

describe('decapsulation', () => {
  const kinds: Array<[string, L4Frame, Omit<Outer, 'srcMac' | 'dstMac'>, StatName, StatName?]> = [
    ['IPIP: IPv4 in IPv4', inner4, { src: '10.0.0.10', dst: T4, kind: 'ipip' }, 'ipip4'],
    ['IPIP: IPv6 in IPv6', inner6, { src: 'fd00::10', dst: T6, kind: 'ipip' }, 'ipip6'],
    ['IPIP: IPv4 in IPv6', inner4, { src: 'fd00::10', dst: T6, kind: 'ipip', flowLabel: 0x12345 }, 'ipip4'],
    ['GUE variant 1: IPv4 over IPv4', inner4, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 51234 } }, 'gue4'],
    ['GUE variant 1: IPv6 over IPv4, UDP checksum', inner6, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 51234 }, udpChecksum: true }, 'gue6'],
    ['GUE variant 1: IPv4 over IPv6', inner4, { src: 'fd00::10', dst: T6, kind: { guePort: 6080, sport: 50000 } }, 'gue4'],
    ['GUE variant 1: IPv6 over IPv6', inner6, { src: 'fd00::10', dst: T6, kind: { guePort: 6080, sport: 65535 } }, 'gue6'],
    ['GUE variant 0, no optional fields: IPv4', inner4, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 49152, gueHeader: gue0(4) } }, 'gue4'],
    // Private data naming a previous backend (10.0.0.3, generation 42):
    // a UDP datagram is delivered here all the same.
    ['GUE variant 0 with 8 bytes of private data: IPv6 over IPv6', inner6,
      { src: 'fd00::10', dst: T6, kind: { guePort: 6080, sport: 49999, gueHeader: gue0(41, Buffer.from('0a0000030000002a', 'hex')) } }, 'gue6', 'delivered'],
    ['GUE variant 0 with 12 bytes of private data (not ours to read): IPv4', inner4,
      { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 49999, gueHeader: gue0(4, Buffer.alloc(12, 9)) } }, 'gue4'],
  ];
  for (const [what, inner, outer, counter, also] of kinds) {
    for (const tags of [0, 1, 2]) {
      it(`${what}${tags ? `, ${tags} VLAN tag(s)` : ''}: the client's packet exactly, L2 kept, EtherType the inner one`, () => {
        const ip = ipOf(inner);
        const pkt = withVlans(encapsulate(ip, { ...outer, ...OUTER_MACS }), tags);
        const r = run(pkt);
        expect(r.retval).toBe(XDP.PASS);
        expect(hex(r.data)).toBe(hex(delivered(pkt, ip, 14 + 4 * tags)));
        expect(read()).toEqual(counts({ [counter]: 1n, bytes: BigInt(pkt.length), ...(also ? { [also]: 1n } : {}) }));
        expect(root.counters(SLOT).packets.XDP_PASS).toBe(1n);
      });
    }
  }

  it('takes apart the balancer\'s own output back into the client\'s packet', () => {
    const lb = RootArray.load();
    try {
      const fd = loadSlotProgram(lb, { object: BPF('xdp_lb.o'), program: 'xdp_lb', slot: 7 });
      lb.fill(7, fd);
      const fds = lbMapsOf(fd);
      closeFd(fd);
      try {
        for (const [forwarding, backend] of [['ipip', T4], ['gue', T4], ['ipip', T6], ['gue', T6]]) {
          applyConfig(fds, validateConfig({
            encap_source_ipv4: '10.0.0.10', encap_source_ipv6: 'fd00::10',
            vips: [{ address: '10.0.0.100', port: 80, forwarding, backends: [{ address: backend, mac: '02:00:00:00:00:02' }] }],
          }));
          const sent = frame({ ...inner4, flags: TCP.SYN, sport: 40000 + backend.length, dstMac: '02:00:00:00:00:10' });
          const encapsulated = testRun(lb.rootFd, sent);
          expect(encapsulated.retval).toBe(XDP.TX);
          const r = run(encapsulated.data);
          expect([forwarding, backend, r.retval]).toEqual([forwarding, backend, XDP.PASS]);
          expect(hex(r.data.subarray(14))).toBe(hex(sent.subarray(14)));
          expect(hex(r.data.subarray(0, 14))).toBe(hex(Buffer.concat([mac('02:00:00:00:00:02'), mac('02:00:00:00:00:10'), Buffer.from([8, 0])])));
        }
      } finally {
        closeLb(fds);
      }
    } finally {
      lb.close();
    }
  });
});

describe('what the decapsulator leaves alone', () => {
  it('passes traffic that is no tunnel untouched, counting nothing', () => {
    const arp = Buffer.concat([mac('ff:ff:ff:ff:ff:ff'), mac('02:00:00:00:00:01'), Buffer.from([0x08, 0x06]), Buffer.alloc(28, 1)]);
    const others = [
      frame({ ...inner4, dst: T4 }), // TCP to the tunnel address
      frame({ ...inner6, dst: T6, dport: 6081 }), // UDP to another port
      frame({ ...inner4, proto: 'udp', dst: T4, dport: 53 }),
      arp,
    ];
    for (const pkt of others) {
      const r = run(pkt);
      expect(r.retval).toBe(XDP.PASS);
      expect(r.data.equals(pkt)).toBe(true);
    }
    expect(read()).toEqual(counts());
  });

  it('passes untouched, and counts as not ours, tunnels to other addresses, GUE control and non-IP GUE, and GUE when no port is set', () => {
    const ip = ipOf(inner4);
    const notOurs = [
      encapsulate(ip, { src: '10.0.0.10', dst: '10.0.0.3', kind: 'ipip', ...OUTER_MACS }),
      encapsulate(ipOf(inner6), { src: 'fd00::10', dst: 'fd00::3', kind: { guePort: 6080, sport: 50000 }, ...OUTER_MACS }),
      encapsulate(ip, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 50000, gueHeader: gue0(4, Buffer.alloc(0), true) }, ...OUTER_MACS }),
      encapsulate(ip, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 50000, gueHeader: gue0(47) }, ...OUTER_MACS }),
    ];
    for (const pkt of notOurs) {
      const r = run(pkt);
      expect(r.retval).toBe(XDP.PASS);
      expect(r.data.equals(pkt)).toBe(true);
    }
    expect(read()).toEqual(counts({ not_ours: 4n }));
    configure({ address_ipv4: T4 });
    const gue = encapsulate(ip, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 50000 }, ...OUTER_MACS });
    const v6 = encapsulate(ipOf(inner6), { src: 'fd00::10', dst: T6, kind: 'ipip', ...OUTER_MACS });
    for (const pkt of [gue, v6]) expect(run(pkt).data.equals(pkt)).toBe(true);
    expect(read()).toEqual(counts({ not_ours: 5n }));
  });
});

describe('malformed tunnel packets', () => {
  const ip4 = ipOf(inner4);
  const ipip = () => encapsulate(ip4, { src: '10.0.0.10', dst: T4, kind: 'ipip', ...OUTER_MACS });
  const gue = (gueHeader?: Buffer, inner = ip4) => encapsulate(inner, { src: '10.0.0.10', dst: T4, kind: { guePort: 6080, sport: 50000, gueHeader }, ...OUTER_MACS });
  /** Rewrite the outer IPv4 header's checksum after a change. */
  const fix4 = (f: Buffer) => {
    f.writeUInt16BE(0, 24);
    f.writeUInt16BE(inetChecksum(f.subarray(14, 34)), 24);
    return f;
  };
  const cases: Array<[string, () => Buffer]> = [
    ['IPIP whose inner packet is not IPv4', () => {
      const f = ipip();
      f[34] = 0x65;
      return f;
    }],
    ['IPIP whose inner length runs past the outer packet', () => {
      const f = ipip();
      f.writeUInt16BE(ip4.length + 1, 36);
      return f;
    }],
    ['IPIP cut short: no whole inner header, the outer length saying so', () => {
      const f = Buffer.from(ipip().subarray(0, 34 + 12));
      f.writeUInt16BE(20 + 12, 16);
      return fix4(f);
    }],
    ['an outer IPv4 length past the frame', () => fix4(Buffer.from(ipip().subarray(0, 34 + 12)))],
    ['an outer IPv4 fragment', () => {
      const f = ipip();
      f.writeUInt16BE(0x2000, 20);
      return fix4(f);
    }],
    ['GUE of an undefined variant (2)', () => gue(Buffer.from([0x80, 4, 0, 0]))],
    ['GUE variant 1 with a version that is neither 4 nor 6', () => {
      const f = gue();
      f[42] = 0x55;
      return f;
    }],
    ['GUE variant 0 whose optional fields run past the datagram', () => {
      const f = gue(gue0(4));
      f[42] = 31;
      return f;
    }],
    ['GUE variant 0 saying IPv6 over an IPv4 packet', () => gue(gue0(41))],
    ['a UDP length past the outer packet', () => {
      const f = gue();
      f.writeUInt16BE(f.readUInt16BE(38) + 1, 38);
      return f;
    }],
    ['a UDP length below its header', () => {
      const f = gue();
      f.writeUInt16BE(7, 38);
      return f;
    }],
    ['IPv6 outer with a payload length past the frame', () => {
      const f = encapsulate(ipOf(inner6), { src: 'fd00::10', dst: T6, kind: 'ipip', ...OUTER_MACS });
      f.writeUInt16BE(f.readUInt16BE(18) + 8, 18);
      return f;
    }],
  ];
  for (const [what, make] of cases) {
    it(`drops and counts ${what}`, () => {
      const pkt = make();
      const r = run(pkt);
      expect(r.retval).toBe(XDP.DROP);
      expect(r.data.equals(pkt)).toBe(true);
      expect(read()).toEqual(counts({ malformed: 1n }));
      expect(root.counters(SLOT).packets.XDP_DROP).toBe(1n);
    });
  }
});

// Chaining, with real sockets: the decapsulator in a network namespace of
// the test's, where this process listens and connects (so that
// bpf_skc_lookup_tcp() finds what it should), run with the namespace's
// interface as the ingress one (so that its FIB lookup toward the
// previous backend answers from the namespace's tables).
describe('chaining to the previous backend', () => {
  const VIP4 = '10.0.0.100';
  const VIP6 = 'fd00::100';
  const BK_MAC = '02:00:00:00:00:02'; // this backend's interface
  const PREV4 = '10.0.0.3';
  const PREV6 = 'fd00::3';
  const PREV_MAC = '02:00:00:00:00:03';
  const PORT = 8080;
  let leave: () => void;
  let ifindex = 0;
  let server: Server;
  const sockets: Socket[] = [];
  let established: { port: number } = { port: 0 };
  let timeWait: { port: number } = { port: 0 };

  beforeAll(async () => {
    const ns = `xdc-${uniqueTag()}`;
    leave = enterLabNamespace(ns, [
      ['link', 'add', 'bk0', 'address', BK_MAC, 'type', 'veth', 'peer', 'name', 'bk0p'],
      ...['bk0', 'bk0p', 'lo'].map((d) => ['link', 'set', d, 'up']),
      ['addr', 'add', `${T4}/24`, 'dev', 'bk0'],
      ['addr', 'add', `${T6}/64`, 'dev', 'bk0', 'nodad'],
      ['addr', 'add', `${VIP4}/32`, 'dev', 'lo'],
      ['addr', 'add', `${VIP6}/128`, 'dev', 'lo'],
      ['neigh', 'replace', PREV4, 'lladdr', PREV_MAC, 'dev', 'bk0', 'nud', 'permanent'],
      ['neigh', 'replace', PREV6, 'lladdr', PREV_MAC, 'dev', 'bk0', 'nud', 'permanent'],
    ]);
    sysctlIn(ns, 'net.ipv4.conf.all.forwarding', '1');
    sysctlIn(ns, 'net.ipv6.conf.all.forwarding', '1');
    ifindex = ifNameToIndex('bk0');
    server = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen({ port: PORT, host: '::', ipv6Only: false }, resolve));
    const dial = () => new Promise<Socket>((resolve, reject) => {
      const c = connect({ host: VIP4, port: PORT, localAddress: T4 }, () => resolve(c));
      c.on('error', reject);
    });
    const live = await dial();
    sockets.push(live);
    established = { port: live.localPort! };
    // TIME_WAIT on our side: the accepted socket closes first.
    const closing = await dial();
    await new Promise((r) => setTimeout(r, 50));
    const accepted = sockets.find((s) => s.remotePort === closing.localPort)!;
    timeWait = { port: closing.localPort! };
    const closed = new Promise((r) => closing.on('close', r));
    closing.on('end', () => closing.end());
    accepted.end();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    // (ss as the witness; the listener is dual-stack: IPv4 peers show mapped.)
    expect(execFileSync('ss', ['-Htan', 'state', 'time-wait', `sport = :${PORT}`], { encoding: 'utf8' })).toMatch(new RegExp(`${T4}\\]?:${timeWait.port}\\b`));
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server?.close(r));
    leave?.();
  });

  const runIn = (pkt: Buffer) => testRun(root.rootFd, pkt, 1, ifindex);
  const seg = (sport: number, flags: number, six = false): L4Frame => ({
    src: six ? T6 : T4, dst: six ? VIP6 : VIP4, sport, dport: PORT, proto: 'tcp', flags, payload: Buffer.from('chained?'),
  });
  /** What the balancer sends: GUE variant 0 naming `prev`, generation 7. */
  const fromBalancer = (inner: L4Frame, prev: string, outer6 = false) => encapsulate(ipOf(inner), {
    src: outer6 ? 'fd00::10' : '10.0.0.10', dst: outer6 ? T6 : T4, srcMac: '02:00:00:00:00:10', dstMac: BK_MAC,
    kind: { guePort: 6080, sport: 51515, gueHeader: gueVariant0(inner.src.includes(':') ? 6 : 4, prev, 7) }, tos: 0x28, ttl: 50, flowLabel: 0x5a5a5,
  });

  it('delivers a segment of an established connection, and of one in TIME_WAIT, having looked them up', () => {
    for (const port of [established.port, timeWait.port]) {
      const inner = seg(port, TCP.ACK);
      const pkt = fromBalancer(inner, PREV4);
      const r = runIn(pkt);
      expect([port, r.retval]).toEqual([port, XDP.PASS]);
      expect(hex(r.data)).toBe(hex(delivered(pkt, ipOf(inner))));
    }
    expect(read()).toEqual(counts({ gue4: 2n, delivered: 2n, bytes: BigInt(2 * fromBalancer(seg(1, TCP.ACK), PREV4).length) }));
  });

  it('sends a segment of no connection on to the previous backend once, as GUE variant 1 from its own address', () => {
    // Port 40000 meets only the listener (no SYN cookie it completes);
    // port 9 meets no socket at all.
    let bytes = 0n;
    for (const [sport, dport] of [[40000, PORT], [40001, 9]]) {
      const inner = { ...seg(sport, TCP.ACK), dport };
      const pkt = fromBalancer(inner, PREV4);
      bytes += BigInt(pkt.length);
      const r = runIn(pkt);
      expect([sport, r.retval]).toEqual([sport, XDP.TX]);
      const want = encapsulate(ipOf(inner), { src: T4, dst: PREV4, srcMac: BK_MAC, dstMac: PREV_MAC, kind: { guePort: 6080, sport: 51515 }, tos: 0x28, ttl: 49 });
      expect(hex(r.data)).toBe(hex(want));
    }
    expect(read()).toEqual(counts({ chained: 2n, bytes }));
  });

  it('over IPv6: Hlen 5 in, an IPv6 outer header with its UDP checksum out, the flow label kept', () => {
    const inner = seg(40002, TCP.ACK | TCP.FIN, true);
    const pkt = fromBalancer(inner, PREV6, true);
    const r = runIn(pkt);
    expect(r.retval).toBe(XDP.TX);
    const want = encapsulate(ipOf(inner), { src: T6, dst: PREV6, srcMac: BK_MAC, dstMac: PREV_MAC, kind: { guePort: 6080, sport: 51515 }, tos: 0x28, ttl: 49, flowLabel: 0x5a5a5 });
    expect(hex(r.data)).toBe(hex(want));
    expect(read()).toEqual(counts({ chained: 1n, bytes: BigInt(pkt.length) }));
  });

  it('never chains a chained packet (variant 1), a SYN, a datagram, or to itself', () => {
    const stray = seg(40003, TCP.ACK);
    const cases: Array<[string, Buffer, L4Frame]> = [
      ['variant 1', encapsulate(ipOf(stray), { src: PREV4, dst: T4, srcMac: PREV_MAC, dstMac: BK_MAC, kind: { guePort: 6080, sport: 51515 } }), stray],
      ['a SYN to a closed port', fromBalancer({ ...seg(40004, TCP.SYN), dport: 9 }, PREV4), { ...seg(40004, TCP.SYN), dport: 9 }],
      ['a UDP datagram', fromBalancer({ ...seg(40005, 0), proto: 'udp' }, PREV4), { ...seg(40005, 0), proto: 'udp' }],
      ['naming this backend', fromBalancer(stray, T4), stray],
    ];
    for (const [what, pkt, inner] of cases) {
      const r = runIn(pkt);
      expect([what, r.retval]).toEqual([what, XDP.PASS]);
      expect([what, hex(r.data)]).toEqual([what, hex(delivered(pkt, ipOf(inner)))]);
    }
    // The SYN and the datagram delivered without a lookup; the segment
    // naming this backend looked up, unowned; variant 1 not looked at.
    const bytes = cases.reduce((n, [, pkt]) => n + BigInt(pkt.length), 0n);
    expect(read()).toEqual(counts({ delivered: 2n, unowned: 1n, gue4: 4n, bytes }));
  });

  it('delivers here what it cannot send on: no route to the previous backend, no address of its family', () => {
    const inner = seg(40006, TCP.ACK);
    const pkts = [fromBalancer(inner, '192.0.2.1'), fromBalancer(inner, PREV6)];
    configure({ address_ipv4: T4, gue_port: 6080 });
    for (const pkt of pkts) {
      const r = runIn(pkt);
      expect(r.retval).toBe(XDP.PASS);
      expect(hex(r.data)).toBe(hex(delivered(pkt, ipOf(inner))));
    }
    expect(read()).toEqual(counts({ unowned: 2n, gue4: 2n, bytes: BigInt(pkts[0].length + pkts[1].length) }));
  });
});
