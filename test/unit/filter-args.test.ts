import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/programs/filter/status.js';
import { parsePps, parseTag } from '../../src/programs/filter/config.js';
import { formatPrefix, keyPrefix, parsePrefix, prefixKey } from '../../src/programs/filter/prefix.js';
import { UsageError } from '../../src/errors.js';

const p = (text: string) => formatPrefix(parsePrefix(text));

describe('prefixes', () => {
  it('parses IPv4 and IPv6 prefixes and bare addresses', () => {
    expect(['192.0.2.0/24', '10.1.2.3', '0.0.0.0/0', '2001:db8::/32', '::/0', '2001:db8::1', 'fe80::/10'].map(p)).toEqual(
      ['192.0.2.0/24', '10.1.2.3/32', '0.0.0.0/0', '2001:db8::/32', '::/0', '2001:db8::1/128', 'fe80::/10'],
    );
  });
  it('writes IPv6 in RFC 5952 form', () => {
    expect(p('2001:0db8:0000:0000:0001:0000:0000:0001')).toBe('2001:db8::1:0:0:1/128');
    expect(p('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4:5:6:102:304/128');
  });
  it('stores IPv4-mapped IPv6 prefixes of /96 and longer as IPv4', () => {
    expect(parsePrefix('::ffff:10.1.2.3')).toEqual({ family: 4, addr: Buffer.from([10, 1, 2, 3]), len: 32 });
    expect(p('::ffff:10.0.0.0/104')).toBe('10.0.0.0/8');
    expect(p('::ffff:0:0/96')).toBe('0.0.0.0/0');
    expect(p('::/95')).toBe('::/95');
  });
  it('rejects malformed prefixes naming what was expected', () => {
    const cases: Record<string, string> = {
      '10.0.0.0/33': 'the length must be a whole number from 0 to 32',
      '::/129': 'the length must be a whole number from 0 to 128',
      '1.2.3': 'expected an IPv4 or IPv6 address with an optional /length, like 192.0.2.0/24 or 2001:db8::/32',
      '': 'expected an IPv4 or IPv6 address with an optional /length, like 192.0.2.0/24 or 2001:db8::/32',
      '10.1.2.3/24': 'host bits are set: expected 10.1.2.0/24',
      '2001:db8::1/32': 'host bits are set: expected 2001:db8::/32',
      '1.2.3.4/': 'the length must be a whole number from 0 to 32',
      '1.2.3.4/-1': 'the length must be a whole number from 0 to 32',
      'fe80::1%eth0': 'expected an IPv4 or IPv6 address with an optional /length, like 192.0.2.0/24 or 2001:db8::/32',
    };
    for (const [text, why] of Object.entries(cases)) {
      expect(() => parsePrefix(text)).toThrow(new UsageError(`invalid prefix '${text}': ${why}`));
    }
  });
  it('encodes LPM keys: length in host order, then the address', () => {
    expect(prefixKey(parsePrefix('192.0.2.0/24')).toString('hex')).toBe('18000000c0000200');
    const k6 = prefixKey(parsePrefix('2001:db8::/32'));
    expect(k6.toString('hex')).toBe('2000000020010db8000000000000000000000000');
    expect(formatPrefix(keyPrefix(6, k6))).toBe('2001:db8::/32');
  });
});

describe('xdp-filter values', () => {
  it('takes whole pps numbers', () => {
    expect(['0', '20', '4294967295'].map(parsePps)).toEqual([0, 20, 4294967295]);
    for (const bad of ['-1', 'x', '1.5', '', '4294967296']) {
      expect(() => parsePps(bad)).toThrow(new UsageError(`invalid --ptb-max-pps '${bad}': expected a whole number from 0 to 4294967295 (0 sends no replies)`));
    }
  });
  it('takes tags of at most 63 bytes', () => {
    expect(parseTag('x'.repeat(63))).toBe('x'.repeat(63));
    expect(() => parseTag('x'.repeat(64))).toThrow(`invalid tag '${'x'.repeat(64)}': expected at most 63 bytes of text`);
    expect(() => parseTag('é'.repeat(32))).toThrow(UsageError); // 64 bytes in UTF-8
  });
});


describe('xdp-filter status text', () => {
  it('prints the ecbpf layout', () => {
    const text = formatStatus({
      eth0: {
        configuration: { frags_drop: true, ptb_send: true, ptb_max_pps: 20 },
        stats: {
          eth_frame_err: 1n, ip_header_err: 2n, ip6_header_err: 3n, ip_drop_count: 4n, ip6_drop_count: 5n,
          ip_frag_drop_count: 6n, ptb_sent_count: 7n, ptb_err_count: 8n, ptb_mem_err_count: 2n ** 63n,
        },
        source_drops: [{ address: '192.0.2.0', prefix_len: 24, tag: 'scanner', load_time: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), hits: 9n }],
      },
    });
    expect(text).toBe([
      "=================== Status for interface 'eth0' ===================",
      'Current Configuration:',
      '',
      'frags_drop? true',
      'ptb_send? true',
      'ptb_max_pps: 20',
      '',
      "Drop Maps for interface 'eth0':",
      '┌───────────┬───────────┬─────────┬─────────────────────────────────┬──────┐',
      '│ Address   │ PrefixLen │ Tag     │ Load Time                       │ Hits │',
      '├───────────┼───────────┼─────────┼─────────────────────────────────┼──────┤',
      '│ 192.0.2.0 │ 24        │ scanner │ Fri, 02 Jan 2026 03:04:05 +0000 │ 9    │',
      '└───────────┴───────────┴─────────┴─────────────────────────────────┴──────┘',
      '',
      "Stats for interface 'eth0':",
      '',
      'eth_frame_err: 1',
      'ip_header_err: 2',
      'ip6_header_err: 3',
      'ip_drop_count: 4',
      'ip6_drop_count: 5',
      'ip_frag_drop_count: 6',
      'ptb_sent_count: 7',
      'ptb_err_count: 8',
      'ptb_mem_err_count: 9223372036854775808',
    ].join('\n'));
    expect(formatStatus({})).toBe('xdp-filter is not attached to any interface.');
  });
});
