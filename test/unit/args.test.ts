import { describe, expect, it } from 'vitest';
import { parser, validate } from '../../src/cli/root.js';
import { missingCapabilities } from '../../src/cli/main.js';
import { parseInterfaceList, validateInterfaceName } from '../../src/net/interface.js';
import { parseMode } from '../../src/root/attach.js';
import { parseSlot } from '../../src/root/slot.js';
import { errnoName } from '../../src/libbpf/errors.js';
import { UsageError } from '../../src/errors.js';

const req = async (...args: string[]) => validate(await parser(args).parse());

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

describe('xdp-root arguments', () => {
  it('parses each action', async () => {
    expect(await req('--attach', '-i', 'eth0,eth1')).toEqual({ action: 'attach', ifaces: ['eth0', 'eth1'], mode: 'auto' });
    expect(await req('--attach', '-i', 'eth0', '--mode', 'skb')).toEqual({ action: 'attach', ifaces: ['eth0'], mode: 'skb' });
    expect(await req('--detach', '--interface', 'eth0')).toEqual({ action: 'detach', ifaces: ['eth0'], mode: 'auto' });
    expect(await req('--load', '-i', 'eth0', '-s', '3', '-o', 'x.o', '-p', 'prog')).toEqual({
      action: 'load', ifname: 'eth0', slot: 3, object: 'x.o', program: 'prog',
    });
    expect(await req('--unload', '-i', 'eth0', '--slot', '0')).toEqual({ action: 'unload', ifname: 'eth0', slot: 0 });
    expect(await req('--status')).toEqual({ action: 'status', ifaces: undefined });
    expect(await req('--status', '--clear', '-i', 'eth0')).toEqual({ action: 'status', ifaces: ['eth0'] });
    expect(await req('--clear')).toEqual({ action: 'clear', ifaces: undefined });
  });

  it('refuses incomplete or contradictory requests', async () => {
    await expect(req()).rejects.toThrow(/^nothing to do: expected one of --attach/);
    await expect(req('--attach', '--load', '-i', 'eth0')).rejects.toThrow('choose one of --attach, --detach, --load, --unload, --status, --clear; got --attach and --load');
    await expect(req('--attach')).rejects.toThrow('--attach needs --interface');
    await expect(req('--load', '-i', 'eth0', '-s', '1', '-o', 'x.o')).rejects.toThrow('--load needs --program');
    await expect(req('--load', '-i', 'eth0,eth1', '-s', '1', '-o', 'x.o', '-p', 'p')).rejects.toThrow("--load takes one interface, got 'eth0,eth1'");
    await expect(req('--unload', '-i', 'eth0', '-s', '8')).rejects.toThrow("invalid slot '8'");
    await expect(req('--status', '--frobnicate')).rejects.toThrow('Unknown argument: frobnicate (see xdp-root --help)');
    await expect(req('--load', '-i', 'eth0', '-s', '1', '-s', '2', '-o', 'x.o', '-p', 'p')).rejects.toThrow('--slot given more than once: expected one value');
  });

  it('takes run with --config and --dry-run, and those only with run', async () => {
    expect(await req('run')).toEqual({ action: 'run', config: '/etc/xdplb/xdplb.json', dryRun: false });
    expect(await req('run', '--config', '/tmp/x.json', '--dry-run')).toEqual({ action: 'run', config: '/tmp/x.json', dryRun: true });
    await expect(req('run', '--attach')).rejects.toThrow('run takes no --attach: it reads what to do from --config');
    await expect(req('run', 'now')).rejects.toThrow('Unknown argument: now (see xdp-root --help)');
    await expect(req('--status', '--config', '/tmp/x.json')).rejects.toThrow('--config and --dry-run go with run (see xdp-root --help)');
  });

  it('every usage error exits 2', async () => {
    await expect(req('--attach')).rejects.toBeInstanceOf(UsageError);
    await expect(req('--bogus')).rejects.toBeInstanceOf(UsageError);
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
