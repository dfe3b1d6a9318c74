// The capture file writers, byte for byte against blocks written out by hand
// from the pcapng draft and the classic pcap format.
import { describe, expect, it } from 'vitest';
import { captureWriter } from '../../src/programs/sampler/pcap.js';

const hex = (parts: string[]) => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s).toString('hex');

// 2023-11-14T22:13:20.123456789Z
const TS = 1_700_000_000_123_456_789n;
const COMMENT = 'slot=2 prog=xdp_filter action=XDP_DROP'; // 38 bytes
const DATA = Buffer.from([1, 2, 3, 4, 5]);

describe('pcapng writer', () => {
  const w = captureWriter('pcapng');

  it('writes a section header block, then one interface block per interface with its name and ns resolution', () => {
    expect(w.header([{ name: 'eth0', snaplen: 256 }, { name: 'veth-b1', snaplen: 9216 }]).toString('hex')).toBe(hex([
      // SHB: type, length 56, byte-order magic, version 1.0, section length -1
      '0a0d0d0a 38000000 4d3c2b1a 0100 0000 ffffffffffffffff',
      // shb_userappl (4), 17 bytes, padded to 20; opt_endofopt; length again
      `0400 1100 ${ascii('xdplb xdp-sampler')} 000000 00000000 38000000`,
      // IDB: type 1, length 40, LINKTYPE_ETHERNET, reserved, snaplen 256
      '01000000 28000000 0100 0000 00010000',
      // if_name (2) "eth0"; if_tsresol (9) = 9, padded; opt_endofopt; length
      `0200 0400 ${ascii('eth0')} 0900 0100 09000000 00000000 28000000`,
      // IDB: length 44, snaplen 9216, if_name "veth-b1" (7 bytes, padded to 8)
      '01000000 2c000000 0100 0000 00240000',
      `0200 0700 ${ascii('veth-b1')}00 0900 0100 09000000 00000000 2c000000`,
    ]).toString('hex'));
  });

  it('writes an enhanced packet block with the original length, ns timestamp and a comment', () => {
    expect(w.packet({ interfaceId: 1, timestampNs: TS, origLen: 60, data: DATA, comment: COMMENT }).toString('hex')).toBe(hex([
      // EPB: type 6, length 88, interface 1, timestamp high/low, captured 5, original 60
      '06000000 58000000 01000000 fe9c9717 15cd853d 05000000 3c000000',
      // the 5 bytes, padded to 8
      '0102030405 000000',
      // opt_comment (1), 38 bytes, padded to 40; opt_endofopt; length again
      `0100 2600 ${ascii(COMMENT)} 0000 00000000 58000000`,
    ]).toString('hex'));
  });

  it('writes no options at all for a packet without a comment', () => {
    expect(w.packet({ interfaceId: 0, timestampNs: TS, origLen: 4, data: Buffer.from('abcd') }).toString('hex')).toBe(hex([
      '06000000 24000000 00000000 fe9c9717 15cd853d 04000000 04000000',
      `${ascii('abcd')} 24000000`,
    ]).toString('hex'));
  });
});

describe('classic pcap writer', () => {
  const w = captureWriter('pcap');

  it('writes the microsecond global header with the largest snaplen and Ethernet', () => {
    expect(w.header([{ name: 'eth0', snaplen: 256 }, { name: 'eth1', snaplen: 1500 }]).toString('hex')).toBe(hex([
      'd4c3b2a1 0200 0400 00000000 00000000 dc050000 01000000',
    ]).toString('hex'));
  });

  it('writes a record with seconds, microseconds, captured and original length', () => {
    expect(w.packet({ interfaceId: 1, timestampNs: TS, origLen: 60, data: DATA, comment: COMMENT }).toString('hex')).toBe(hex([
      '00f15365 40e20100 05000000 3c000000 0102030405',
    ]).toString('hex'));
  });
});
