import { describe, expect, it } from 'vitest';
import { missingCapabilities } from '../../src/cli/main.js';
import { parseInterfaceList, validateInterfaceName } from '../../src/net/interface.js';
import { parseMode } from '../../src/root/attach.js';
import { parseSlot } from '../../src/root/slot.js';
import { errnoName } from '../../src/libbpf/errors.js';
import { UsageError } from '../../src/errors.js';

describe('slot, mode and interface values', () => {
  it('takes slots 0..7 only', () => {
    expect([0, 1, 7].map(parseSlot)).toEqual([0, 1, 7]);
    expect(parseSlot('5')).toBe(5);
    for (const bad of ['8', '-1', '1.5', '', 'x', '07x', ' 3']) {
      expect(() => parseSlot(bad)).toThrow(new UsageError(`invalid slot '${bad}': expected a whole number from 0 to 7`));
    }
  });
  it('takes the three modes', () => {
    expect(['native', 'skb', 'auto'].map(parseMode)).toEqual(['native', 'skb', 'auto']);
    expect(() => parseMode('drv')).toThrow("invalid mode 'drv': expected native, skb or auto");
  });
  it('checks interface names as the kernel does', () => {
    expect(validateInterfaceName('eth0')).toBe('eth0');
    expect(validateInterfaceName('a'.repeat(15))).toBe('a'.repeat(15));
    for (const bad of ['', 'a'.repeat(16), '.', '..', 'a/b', 'a:b', 'a b']) {
      expect(() => validateInterfaceName(bad)).toThrow(UsageError);
    }
  });
  it('splits and de-duplicates interface lists', () => {
    expect(parseInterfaceList('eth0,eth1,eth0')).toEqual(['eth0', 'eth1']);
    expect(parseInterfaceList(' eth0 , eth1')).toEqual(['eth0', 'eth1']);
    expect(() => parseInterfaceList('eth0,,eth1')).toThrow(/invalid interface list 'eth0,,eth1'/);
  });
});


describe('capabilities', () => {
  it('reads CapEff', () => {
    expect(missingCapabilities('CapEff:\t000001ffffffffff\n')).toEqual([]);
    expect(missingCapabilities('CapEff:\t0000000000000000\n')).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_BPF']);
    expect(missingCapabilities(`CapEff:\t${(1n << 12n).toString(16).padStart(16, '0')}\n`)).toEqual(['CAP_SYS_ADMIN', 'CAP_BPF']);
  });
});

describe('errno names', () => {
  it('names kernel and libbpf errors', () => {
    expect(errnoName(1)).toBe('EPERM');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(4001)).toBe('LIBBPF_ERRNO__FORMAT');
    expect(errnoName(99999)).toBe('errno 99999');
  });
});
