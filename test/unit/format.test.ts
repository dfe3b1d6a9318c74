import { describe, expect, it } from 'vitest';
import { formatTime, toJson } from '../../src/format.js';
import { formatStatus } from '../../src/cli/root.js';
import { bootTimeToDate, type InterfaceStatus } from '../../src/root/status.js';
import { zeroCounts } from '../../src/root/stats.js';

describe('formatTime', () => {
  it('writes RFC 2822 in UTC, like ecbpf', () => {
    expect(formatTime(new Date(Date.UTC(2023, 4, 3, 20, 18, 12)))).toBe('Wed, 03 May 2023 20:18:12 +0000');
    expect(formatTime(new Date(Date.UTC(2026, 0, 1, 0, 0, 0)))).toBe('Thu, 01 Jan 2026 00:00:00 +0000');
  });
});

describe('bootTimeToDate', () => {
  it('turns a CLOCK_BOOTTIME stamp into wall time', () => {
    const nowMs = Date.UTC(2026, 10, 21, 12, 0, 0);
    // Loaded 90.5 s before "now" on the boot clock.
    const d = bootTimeToDate(1_000_000_000_000n, 1_090_500_000_000n, nowMs);
    expect(d.toISOString()).toBe('2026-11-21T11:58:29.500Z');
  });
});

describe('toJson', () => {
  it('writes 64-bit counters as exact numbers', () => {
    expect(toJson({ a: 18446744073709551615n, b: [0n, 1n], c: 'x' }, 0)).toBe('{"a":18446744073709551615,"b":[0,1],"c":"x"}');
  });
  it('writes dates like the tables do', () => {
    expect(toJson({ t: new Date(Date.UTC(2023, 4, 3, 20, 18, 12)) }, 0)).toBe('{"t":"Wed, 03 May 2023 20:18:12 +0000"}');
  });
  it('leaves strings that look like numbers alone', () => {
    expect(toJson({ tag: '123' }, 0)).toBe('{"tag":"123"}');
  });
});

describe('formatStatus', () => {
  const counts = (v: Partial<ReturnType<typeof zeroCounts>>) => ({ ...zeroCounts(), ...v });
  const status: Record<string, InterfaceStatus> = {
    eth0: {
      root_loaded: true, mode: 'native', ifindex: 2, root_id: 7,
      subprograms: Array.from({ length: 8 }, (_, slot) =>
        slot === 2
          ? {
              slot, prog_loaded: true, id: 12, name: 'xdp_drop_test',
              load_time: new Date(Date.UTC(2023, 4, 3, 20, 18, 12)),
              statistics: counts({ XDP_DROP: 5n }), bytes: counts({ XDP_DROP: 490n }),
            }
          : { slot, prog_loaded: false, statistics: zeroCounts(), bytes: zeroCounts() },
      ),
      root: { statistics: counts({ XDP_PASS: 1n }), bytes: counts({ XDP_PASS: 60n }) },
      statistics: counts({ XDP_DROP: 5n, XDP_PASS: 1n }),
      bytes: counts({ XDP_DROP: 490n, XDP_PASS: 60n }),
    },
    eth1: { root_loaded: false },
    'eth2@if9': { root_loaded: false, gone: true, ifindex: 9 },
  };

  it('prints the ecbpf-style table, one row per slot, then the root and the totals', () => {
    const lines = formatStatus(status).split('\n');
    expect(lines[0]).toBe('Interface eth0 status (native mode):');
    const cells = (line: string) => line.split('│').slice(1, -1).map((c) => c.trim());
    expect(cells(lines[2])).toEqual(['SLOT', 'ID', 'NAME', 'LOAD TIME', 'XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT', 'XDP_INVALID_ACTION']);
    expect(cells(lines[4])).toEqual(['0', '-', '-', '-', '-', '-', '-', '-', '-', '-']);
    expect(cells(lines[6])).toEqual(['2', '12', 'xdp_drop_test', 'Wed, 03 May 2023 20:18:12 +0000', '0', '5', '0', '0', '0', '0']);
    expect(cells(lines[12])).toEqual(['root', '7', 'xdp_root', '(all slots empty)', '0', '0', '1', '0', '0', '0']);
    expect(cells(lines[13])).toEqual(['total', '', '', '(final verdicts)', '0', '5', '1', '0', '0', '0']);
    expect(lines[15]).toBe('Root array not attached to interface eth1.');
    expect(lines[16]).toBe('Root array of eth2@if9 (ifindex 9) is pinned but its device is gone: run xdp-root --detach --interface eth2 to remove the pins.');
    expect(lines).toHaveLength(17);
  });

  it('warns after the table when the slot mask disagrees with the slots', () => {
    const eth0 = { ...status.eth0, slot_mask_mismatch: { skipped: [3], empty: [4, 6] } } as InterfaceStatus;
    const lines = formatStatus({ eth0 }).split('\n');
    expect(lines[15]).toBe(
      'Warning: the slot mask of eth0 disagrees with its slots: slot 3 holds a program that the root skips ' +
        '(put there by another tool?); slots 4, 6 are empty but still in the mask. ' +
        'Any xdp-root --load or --unload on eth0 rewrites the mask from the slots.',
    );
    expect(lines).toHaveLength(16);
    const only = { ...status.eth0, slot_mask_mismatch: { skipped: [1, 2], empty: [] } } as InterfaceStatus;
    expect(formatStatus({ eth0: only }).split('\n')[15]).toMatch(/: slots 1, 2 hold programs that the root skips \(put there by another tool\?\)\. Any/);
  });

  it('says so when nothing is attached anywhere', () => {
    expect(formatStatus({})).toBe('No root array attached to any interface in this network namespace.');
  });
});
