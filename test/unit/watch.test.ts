import { describe, expect, it } from 'vitest';
import { formatBits, formatPps, formatRate, rates } from '../../src/rates.js';

const counts = (drop: bigint, pass: bigint) => ({ XDP_DROP: drop, XDP_PASS: pass });
const loadTime = new Date('2026-11-21T22:56:17Z');

/** The shape of `xdp-root --status` for one interface, slots 0 and 5. */
function snapshot(opts: { drop: bigint; pass: bigint; id5?: number; rootId?: number }) {
  const slot5 = opts.id5 === undefined
    ? { slot: 5, prog_loaded: false, statistics: counts(0n, 0n), bytes: counts(0n, 0n) }
    : { slot: 5, prog_loaded: true, id: opts.id5, name: 'xdp_drop_test', load_time: loadTime,
        statistics: counts(opts.drop, 0n), bytes: counts(opts.drop * 98n, 0n) };
  return {
    eth0: {
      root_loaded: true, mode: 'native', ifindex: 2, root_id: opts.rootId ?? 10,
      subprograms: [
        { slot: 0, prog_loaded: false, statistics: counts(0n, 0n), bytes: counts(0n, 0n) },
        slot5,
      ],
      statistics: counts(opts.drop, opts.pass),
      bytes: counts(opts.drop * 98n, opts.pass * 1500n),
    },
  };
}

describe('rates', () => {
  it('gives packets per second and bits per second, in the shape of the status', () => {
    const r = rates(snapshot({ drop: 100n, pass: 1000n, id5: 7 }), snapshot({ drop: 300n, pass: 5000n, id5: 7 }), 2);
    expect(r).toEqual({
      eth0: {
        subprograms: [
          { statistics: { XDP_DROP: 0, XDP_PASS: 0 }, bits: { XDP_DROP: 0, XDP_PASS: 0 } },
          { statistics: { XDP_DROP: 100, XDP_PASS: 0 }, bits: { XDP_DROP: 100 * 98 * 8, XDP_PASS: 0 } },
        ],
        statistics: { XDP_DROP: 100, XDP_PASS: 2000 },
        bits: { XDP_DROP: 100 * 98 * 8, XDP_PASS: 2000 * 1500 * 8 },
      },
    });
  });

  it('is exact for counters past 2^53 when the difference is small', () => {
    const base = 2n ** 60n + 1n;
    expect(rates({ bytes: base, packets: base }, { bytes: base + 3n, packets: base + 3n }, 1)).toEqual({ bits: 24, packets: 3 });
    expect(rates({ rx_bytes: 0n }, { rx_bytes: 125n }, 0.5)).toEqual({ rx_bits: 2000 });
  });

  it('is null for a counter that went backwards (--clear), the others keep their rate', () => {
    const r = rates(snapshot({ drop: 300n, pass: 0n, id5: 7 }), snapshot({ drop: 20n, pass: 50n, id5: 7 }), 1) as any;
    expect(r.eth0.statistics).toEqual({ XDP_DROP: null, XDP_PASS: 50 });
    expect(r.eth0.bits).toEqual({ XDP_DROP: null, XDP_PASS: 50 * 1500 * 8 });
    expect(r.eth0.subprograms[1].statistics).toEqual({ XDP_DROP: null, XDP_PASS: 0 });
  });

  it('is null for every counter of a slot whose program was replaced, even if they went up', () => {
    const r = rates(snapshot({ drop: 10n, pass: 0n, id5: 7 }), snapshot({ drop: 500n, pass: 0n, id5: 8 }), 1) as any;
    expect(r.eth0.subprograms[1]).toEqual({ statistics: { XDP_DROP: null, XDP_PASS: null }, bits: { XDP_DROP: null, XDP_PASS: null } });
    expect(r.eth0.subprograms[0].statistics).toEqual({ XDP_DROP: 0, XDP_PASS: 0 });
    expect(r.eth0.statistics.XDP_DROP).toBe(490);
  });

  it('is null for a slot filled or emptied between the snapshots', () => {
    const filled = rates(snapshot({ drop: 0n, pass: 0n }), snapshot({ drop: 4n, pass: 0n, id5: 9 }), 1) as any;
    expect(filled.eth0.subprograms[1].statistics).toEqual({ XDP_DROP: null, XDP_PASS: null });
    const emptied = rates(snapshot({ drop: 4n, pass: 0n, id5: 9 }), snapshot({ drop: 4n, pass: 0n }), 1) as any;
    expect(emptied.eth0.subprograms[1].statistics).toEqual({ XDP_DROP: null, XDP_PASS: null });
    expect(emptied.eth0.statistics).toEqual({ XDP_DROP: 0, XDP_PASS: 0 });
  });

  it('is null everywhere on an interface whose root was attached again', () => {
    const r = rates(snapshot({ drop: 1n, pass: 1n, rootId: 10 }), snapshot({ drop: 9n, pass: 9n, rootId: 11 }), 1) as any;
    expect(r.eth0.statistics).toEqual({ XDP_DROP: null, XDP_PASS: null });
    expect(r.eth0.subprograms[0].bits).toEqual({ XDP_DROP: null, XDP_PASS: null });
  });

  it('pairs slots by number, not position, and drops what the second snapshot lacks', () => {
    const prev = { subprograms: [{ slot: 1, statistics: { XDP_PASS: 10n } }, { slot: 2, statistics: { XDP_PASS: 100n } }] };
    const next = { subprograms: [{ slot: 2, statistics: { XDP_PASS: 130n } }] };
    expect(rates(prev, next, 1)).toEqual({ subprograms: [{ statistics: { XDP_PASS: 30 } }] });
    expect(rates({ a: { x: 1n }, b: { x: 2n } }, { a: { x: 5n } }, 1)).toEqual({ a: { x: 4 } });
  });

  it('is null for an interface or key the first snapshot did not have', () => {
    const r = rates({ eth0: { statistics: { XDP_PASS: 1n } } }, { eth0: { statistics: { XDP_PASS: 3n, XDP_TX: 1n } }, eth1: { bytes: { XDP_PASS: 5n } } }, 1);
    expect(r).toEqual({ eth0: { statistics: { XDP_PASS: 2, XDP_TX: null } }, eth1: { bits: { XDP_PASS: null } } });
  });

  it('pairs list elements by a key the caller gives', () => {
    const prev = { source_drops: [{ address: '192.0.2.0', hits: 5n }, { address: '198.51.100.0', hits: 7n }] };
    const next = { source_drops: [{ address: '198.51.100.0', hits: 17n }] };
    const elementKey = (e: unknown) => (e as { address?: string }).address;
    expect(rates(prev, next, 2, { elementKey })).toEqual({ source_drops: [{ hits: 5 }] });
    // By position, the same lists would pair 198.51.100.0 with 192.0.2.0.
    expect(rates(prev, next, 2)).toEqual({ source_drops: [{ hits: 6 }] });
  });

  it('keeps only counters: numbers, strings, booleans and times are left out', () => {
    expect(rates({ n: 1, s: 'a', b: true, t: loadTime, c: 1n }, { n: 2, s: 'b', b: false, t: loadTime, c: 2n }, 1)).toEqual({ c: 1 });
  });

  it('refuses an interval that is not a positive number of seconds', () => {
    expect(() => rates({}, {}, 0)).toThrow('interval: expected a positive number of seconds, got 0');
    expect(() => rates({}, {}, Number.NaN)).toThrow('got NaN');
  });
});

describe('formatRate', () => {
  it.each([
    [0, '0 pps'],
    [0.5, '0.5 pps'],
    [7, '7.0 pps'],
    [9.96, '10 pps'],
    [950, '950 pps'],
    [999.4, '999 pps'],
    [999.6, '1.0 kpps'],
    [1234, '1.2 kpps'],
    [12_345, '12 kpps'],
    [1_200_000, '1.2 Mpps'],
    [148_809_524, '149 Mpps'],
    [9.999e18, '9999 Ppps'],
  ])('%d -> %s', (value, text) => {
    expect(formatPps(value)).toBe(text);
  });

  it('writes bits per second, and null as a dash', () => {
    expect(formatBits(950_000)).toBe('950 kbit/s');
    expect(formatBits(10e9)).toBe('10 Gbit/s');
    expect(formatBits(null)).toBe('-');
    expect(formatRate(2.5e6, 'B/s')).toBe('2.5 MB/s');
  });
});
