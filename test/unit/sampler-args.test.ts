// xdp-sampler's arguments and values, checked before anything touches the
// kernel (no privileges needed).
import { describe, expect, it } from 'vitest';
import { parser, validate } from '../../src/cli/sampler.js';
import { parseRate, parseSnaplen } from '../../src/programs/sampler/config.js';
import { decodeSample, SAMPLE_HEADER } from '../../src/programs/sampler/layout.js';
import { UsageError } from '../../src/errors.js';

const req = async (...args: string[]) => validate(await parser(args).parse());

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

describe('xdp-sampler arguments', () => {
  it('parses each action with its defaults', async () => {
    expect(await req('--attach', '-i', 'eth0')).toEqual({
      action: 'attach', ifaces: ['eth0'], slot: undefined, settings: { rate: undefined, verdictRate: undefined, snaplen: undefined },
    });
    expect(await req('--attach', '-i', 'eth0,eth1', '--slot', '3', '--rate', '10', '--verdict-rate', '0', '--snaplen', '64')).toEqual({
      action: 'attach', ifaces: ['eth0', 'eth1'], slot: 3, settings: { rate: 10, verdictRate: 0, snaplen: 64 },
    });
    expect(await req('--set-rate', '0', '-i', 'eth0')).toEqual({
      action: 'set-rate', ifaces: ['eth0'], settings: { rate: 0, verdictRate: undefined, snaplen: undefined },
    });
    expect(await req('--detach', '-i', 'eth0')).toEqual({ action: 'detach', ifaces: ['eth0'] });
    expect(await req('--status')).toEqual({ action: 'status', ifaces: undefined });
    expect(await req('--capture', '-i', 'eth0', '-o', 'x.pcapng')).toEqual({
      action: 'capture', ifaces: ['eth0'], format: 'pcapng', output: 'x.pcapng', count: undefined, durationMs: undefined,
    });
  });
  it('takes - as stdout after --output and -o', async () => {
    for (const args of [['--output', '-'], ['-o', '-'], ['--output=-']]) {
      expect(await req('--capture', '-i', 'eth0', ...args, '--format', 'pcap', '--count', '5', '--duration', '1.5')).toMatchObject({
        output: '-', format: 'pcap', count: 5, durationMs: 1500,
      });
    }
  });
  it('refuses flags of another action', async () => {
    await expect(req('--status', '--rate', '5')).rejects.toThrow(new UsageError('--rate does not go with --status'));
    await expect(req('--capture', '-i', 'eth0', '-o', '-', '--snaplen', '5')).rejects.toThrow('--snaplen does not go with --capture');
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
