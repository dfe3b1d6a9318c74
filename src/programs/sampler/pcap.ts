// Capture files: pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html)
// with one interface block per interface, nanosecond timestamps and packet
// comments, or classic pcap (microseconds, no interfaces, no comments) for
// older readers. Pure functions from samples to bytes; little-endian, which
// every reader accepts (the byte-order magic says so).

export const FORMATS = ['pcapng', 'pcap'] as const;
export type Format = (typeof FORMATS)[number];

export const LINKTYPE_ETHERNET = 1;

export interface CaptureInterface {
  name: string;
  /** Most bytes of a packet the file holds. */
  snaplen: number;
}

export interface CapturedPacket {
  /** Index into the interfaces given to header(). */
  interfaceId: number;
  /** Wall-clock time, ns since the Unix epoch. */
  timestampNs: bigint;
  /** The frame's length on the wire, of which `data` is the start. */
  origLen: number;
  data: Buffer;
  comment?: string;
}

export interface CaptureWriter {
  /** The bytes that open the file. */
  header(interfaces: CaptureInterface[]): Buffer;
  /** The bytes of one packet record. */
  packet(p: CapturedPacket): Buffer;
}

export function captureWriter(format: Format): CaptureWriter {
  return format === 'pcap' ? classicPcap : pcapng;
}

// ---- pcapng ----

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_TSRESOL = 9;
/** if_tsresol 9: timestamps count nanoseconds. */
const TSRESOL_NS = 9;

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function option(code: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(code, 0);
  head.writeUInt16LE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc(pad4(value.length))]);
}

function options(list: Array<[number, Buffer]>): Buffer {
  if (!list.length) return Buffer.alloc(0);
  return Buffer.concat([...list.map(([code, value]) => option(code, value)), Buffer.alloc(4) /* opt_endofopt */]);
}

/** Type, total length, body, total length again. */
function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const head = Buffer.alloc(8);
  head.writeUInt32LE(type, 0);
  head.writeUInt32LE(total, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(total, 0);
  return Buffer.concat([head, body, tail]);
}

const pcapng: CaptureWriter = {
  header(interfaces) {
    const shb = Buffer.alloc(16);
    shb.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
    shb.writeUInt16LE(1, 4); // major version
    shb.writeUInt16LE(0, 6); // minor version
    shb.writeBigInt64LE(-1n, 8); // section length: not given
    const blocks = [block(SHB, Buffer.concat([shb, options([[SHB_USERAPPL, Buffer.from('xdplb xdp-sampler')]])]))];
    for (const i of interfaces) {
      const idb = Buffer.alloc(8);
      idb.writeUInt16LE(LINKTYPE_ETHERNET, 0);
      idb.writeUInt32LE(i.snaplen, 4);
      blocks.push(block(IDB, Buffer.concat([
        idb, options([[IF_NAME, Buffer.from(i.name)], [IF_TSRESOL, Buffer.from([TSRESOL_NS])]]),
      ])));
    }
    return Buffer.concat(blocks);
  },
  packet(p) {
    // One allocation per record: captures write hundreds of thousands a second.
    const comment = p.comment ? Buffer.from(p.comment) : null;
    const dataLen = p.data.length + pad4(p.data.length);
    const optsLen = comment ? 4 + comment.length + pad4(comment.length) + 4 : 0;
    const total = 8 + 20 + dataLen + optsLen + 4;
    const b = Buffer.alloc(total);
    b.writeUInt32LE(EPB, 0);
    b.writeUInt32LE(total, 4);
    b.writeUInt32LE(p.interfaceId, 8);
    b.writeUInt32LE(Number(p.timestampNs >> 32n), 12);
    b.writeUInt32LE(Number(p.timestampNs & 0xffffffffn), 16);
    b.writeUInt32LE(p.data.length, 20);
    b.writeUInt32LE(p.origLen, 24);
    p.data.copy(b, 28);
    if (comment) {
      const at = 28 + dataLen;
      b.writeUInt16LE(OPT_COMMENT, at);
      b.writeUInt16LE(comment.length, at + 2);
      comment.copy(b, at + 4);
      // padding and opt_endofopt are zeros already
    }
    b.writeUInt32LE(total, total - 4);
    return b;
  },
};

// ---- classic pcap ----

const PCAP_MAGIC_US = 0xa1b2c3d4;

const classicPcap: CaptureWriter = {
  header(interfaces) {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(PCAP_MAGIC_US, 0);
    h.writeUInt16LE(2, 4); // version 2.4
    h.writeUInt16LE(4, 6);
    // thiszone and sigfigs stay 0
    h.writeUInt32LE(Math.max(...interfaces.map((i) => i.snaplen)), 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    return h;
  },
  packet(p) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Number(p.timestampNs / 1_000_000_000n), 0);
    h.writeUInt32LE(Number((p.timestampNs % 1_000_000_000n) / 1000n), 4);
    h.writeUInt32LE(p.data.length, 8);
    h.writeUInt32LE(p.origLen, 12);
    return Buffer.concat([h, p.data]);
  },
};
