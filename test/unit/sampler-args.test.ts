// xdp-sampler's arguments and values, checked before anything touches the
// kernel (no privileges needed).
import { describe, expect, it } from 'vitest';
import { parseRate, parseSnaplen } from '../../src/programs/sampler/config.js';
import { decodeSample, SAMPLE_HEADER } from '../../src/programs/sampler/layout.js';
import { UsageError } from '../../src/errors.js';


describe('sampler values', () => {
  it('takes rates from 0 (off) to 2^32-1', () => {
    expect(['0', '1', '1000', '4294967295'].map((r) => parseRate(r, 'rate'))).toEqual([0, 1, 1000, 4294967295]);
    for (const bad of ['-1', '1.5', '', 'x', '4294967296', '1e3', ' 5']) {
      expect(() => parseRate(bad, 'rate')).toThrow(
        new UsageError(`invalid rate '${bad}': expected a whole number from 0 (off) to 4294967295, sampling 1 in N packets`),
      );
    }
  });
  it('takes snaplen from 1 to 65535', () => {
    expect(['1', '256', '65535'].map(parseSnaplen)).toEqual([1, 256, 65535]);
    for (const bad of ['0', '65536', '-1', 'x', '']) {
      expect(() => parseSnaplen(bad)).toThrow(new UsageError(`invalid snaplen '${bad}': expected a whole number of bytes from 1 to 65535`));
    }
  });
});


describe('sample records', () => {
  it('decodes a header and its bytes, and refuses a short record', () => {
    const rec = Buffer.alloc(SAMPLE_HEADER.size + 3);
    rec.writeBigUInt64LE(123456789n, SAMPLE_HEADER.timestamp);
    rec.writeUInt32LE(7, SAMPLE_HEADER.ifindex);
    rec.writeUInt32LE(2, SAMPLE_HEADER.rx_queue);
    rec.writeUInt32LE(1500, SAMPLE_HEADER.len);
    rec.writeUInt32LE(3, SAMPLE_HEADER.cap_len);
    rec[SAMPLE_HEADER.slot] = 4;
    rec[SAMPLE_HEADER.action] = 1;
    rec[SAMPLE_HEADER.kind] = 1;
    rec.set([0xaa, 0xbb, 0xcc], SAMPLE_HEADER.size);
    expect(decodeSample(rec)).toEqual({
      kind: 'verdict', timestamp: 123456789n, ifindex: 7, rxQueue: 2, len: 1500, slot: 4, action: 'XDP_DROP',
      data: Buffer.from([0xaa, 0xbb, 0xcc]),
    });
    rec[SAMPLE_HEADER.kind] = 0;
    rec[SAMPLE_HEADER.action] = 0xff;
    expect(decodeSample(rec)).toMatchObject({ kind: 'packet', action: null });
    expect(decodeSample(rec.subarray(0, SAMPLE_HEADER.size + 2))).toBeNull();
    expect(decodeSample(Buffer.alloc(10))).toBeNull();
  });
});
