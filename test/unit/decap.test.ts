// xdp-decap without a kernel: its values, its section of the service
// config, the checks of --check on made-up hosts, its status table and
// metrics from STATS, and the /proc parsers it (and the balancer) read
// addresses and connected subnets with.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { inPrefix, parseIfInet6, parseIpv6RouteConnected, parseRouteConnected } from '../../src/net/addresses.js';
import { parseConfig } from '../../src/service/config.js';
import { flagValue, guePort, tunnelAddress, type Tunnels } from '../../src/programs/decap/config.js';
import { formatChecks, runChecks, type CheckView } from '../../src/programs/decap/check.js';
import { STATS } from '../../src/programs/decap/layout.js';
import { formatStatus } from '../../src/programs/decap/status.js';
import { subprogramTool } from '../../src/cli/subprogram.js';
import { decap } from '../../src/programs/decap/index.js';
import { parseFibTrie } from '../../src/programs/lb/local.js';

describe('xdp-decap values', () => {
  it('takes unicast tunnel addresses of the family, in canonical form, or none', () => {
    expect(tunnelAddress('10.0.0.2', 4)).toBe('10.0.0.2');
    expect(tunnelAddress('FD00:0::2', 6)).toBe('fd00::2');
    expect(tunnelAddress('none', 4)).toBeNull();
    expect(tunnelAddress(null, 6, null)).toBeNull();
    for (const [v, f] of [['fd00::2', 4], ['10.0.0.2', 6], ['0.0.0.0', 4], ['127.0.0.1', 4], ['224.0.0.5', 4], ['::', 6], ['::1', 6], ['ff02::1', 6], ['none', 6]] as const) {
      expect(() => tunnelAddress(v, f, f === 6 && v === 'none' ? null : 'none')).toThrow(`expected a unicast IPv${f} address of this host, or`);
    }
    expect(() => flagValue('tunnel-ipv4', 'fd00::1', (t) => tunnelAddress(t, 4))).toThrow(
      new UsageError("invalid --tunnel-ipv4 'fd00::1': expected a unicast IPv4 address of this host, or none"),
    );
  });

  it('takes GUE ports 0 (none) to 65535', () => {
    expect([guePort('0'), guePort('6080'), guePort(65535)]).toEqual([0, 6080, 65535]);
    for (const v of ['65536', '-1', '60.8', 'gue', 1.5]) expect(() => guePort(v)).toThrow('expected a UDP port from 1 to 65535, or 0 for no GUE');
  });
});

describe('xdp-decap\'s section of the service config', () => {
  const F = '/etc/xdplb/xdplb.json';
  const section = (decapSection: object) => parseConfig(JSON.stringify({ decap: decapSection }), F).sections.decap;
  it('defaults to the interface\'s own addresses (absent keys) and GUE on 6080, slot 6', () => {
    expect(section({ enabled: true })).toEqual({ enabled: true, slot: 6, settings: { tunnels: {}, gue_port: 6080 } });
    expect(section({ tunnel_ipv4: '10.0.0.2', tunnel_ipv6: null, gue_port: 0 }).settings).toEqual({ tunnels: { tunnel_ipv4: '10.0.0.2', tunnel_ipv6: null }, gue_port: 0 });
  });
  it('names the line, column and key of a mistake', () => {
    const fails = (text: string) => {
      try {
        parseConfig(text, F);
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(fails('{"decap": {"tunnel_ipv4": "fd00::1"}}')).toBe(`${F}:1:27: decap.tunnel_ipv4: expected a unicast IPv4 address of this host, or null, got "fd00::1"`);
    expect(fails('{"decap": {"tunnel_ipv6": "none"}}')).toBe(`${F}:1:27: decap.tunnel_ipv6: expected a unicast IPv6 address of this host, or null, got "none"`);
    expect(fails('{"decap": {"gue_port": "6080"}}')).toBe(`${F}:1:24: decap.gue_port: expected a UDP port from 1 to 65535, or 0 for no GUE, got "6080"`);
    expect(fails('{"decap": {"port": 6080}}')).toBe(`${F}:1:12: decap.port: unknown key: expected one of enabled, slot, tunnel_ipv4, tunnel_ipv6, gue_port`);
    expect(fails('{"decap": {"enabled": true}, "lb": {"enabled": true, "slot": 6}}')).toBe(`${F}:1:36: lb.slot: slot 6 is already taken by decap`);
  });
});

describe('xdp-decap --check', () => {
  const FIB = `Local:\n  +-- 10.0.0.0/8 2 0 2\n     |-- 10.0.0.2\n        /32 host LOCAL\n     |-- 10.0.0.21\n        /32 host LOCAL\n`;
  const TUNNELS: Tunnels = { tunnel_ipv4: '10.0.0.2', tunnel_ipv6: null, gue_port: 6080 };
  const host = (conf: Record<string, number>, decapOn: Tunnels | null = TUNNELS): CheckView => ({
    local: { v4: parseFibTrie(FIB), v6: new Set(['fd00::21']) },
    conf: (iface, key) => conf[`${iface}.${key}`] ?? null,
    decap: (iface) => (iface === 'eth0' ? decapOn : null),
  });
  const good = { 'all.rp_filter': 0, 'eth0.rp_filter': 2, 'all.arp_ignore': 1, 'eth0.arp_ignore': 0, 'all.arp_announce': 2, 'eth0.arp_announce': 0 };

  it('passes a backend with everything, and says what each check found', () => {
    const r = runChecks(['10.0.0.21', 'fd00::21'], undefined, ['eth0'], host(good));
    expect(r.ok).toBe(true);
    expect(formatChecks(r).split('\n')).toEqual([
      'What this host needs as a backend of 10.0.0.21, fd00::21 (any DSR mode) on eth0:',
      '  ok       VIP 10.0.0.21 is an address of this network namespace',
      '  ok       VIP fd00::21 is an address of this network namespace',
      '  ok       rp_filter on eth0 is 2 (loose; the larger of all 0 and eth0 2)',
      '  ok       arp_ignore on eth0 is 1 (the larger of all 1 and eth0 0): ARP for the VIPs on lo is left to the balancer',
      '  ok       arp_announce on eth0 is 2 (the larger of all 2 and eth0 0)',
      '  ok       xdp-decap on eth0 takes tunnel packets to 10.0.0.2, GUE on port 6080',
      'All 6 checks passed.',
    ]);
  });

  it('checks only what the mode needs: no decapsulator for dsr-l2, no ARP for ipip, nothing of IPv4 for IPv6 VIPs', () => {
    const names = (vips: string[], mode: 'dsr-l2' | 'ipip' | 'gue') => runChecks(vips, mode, ['eth0'], host(good)).checks.map((c) => c.check);
    expect(names(['10.0.0.21'], 'dsr-l2')).toEqual(['vip_local', 'rp_filter', 'arp_ignore', 'arp_announce']);
    expect(names(['10.0.0.21'], 'ipip')).toEqual(['vip_local', 'rp_filter', 'decap']);
    expect(names(['fd00::21'], 'gue')).toEqual(['vip_local', 'decap']);
  });

  it('names what is missing and the fix that changes the interface alone where it can', () => {
    const bad = { 'all.rp_filter': 1, 'eth0.rp_filter': 0, 'all.arp_ignore': 0, 'eth0.arp_ignore': 8, 'all.arp_announce': 1, 'eth0.arp_announce': 0 };
    const r = runChecks(['10.0.0.9'], undefined, ['eth0'], host(bad, { ...TUNNELS, gue_port: 0 }));
    expect(r.ok).toBe(false);
    expect(r.checks.filter((c) => !c.ok).map((c) => [c.check, c.fix])).toEqual([
      ['vip_local', 'ip address add 10.0.0.9/32 dev lo'],
      ['rp_filter', 'sysctl -w net.ipv4.conf.eth0.rp_filter=2'],
      ['arp_ignore', 'sysctl -w net.ipv4.conf.eth0.arp_ignore=1'],
      ['arp_announce', 'sysctl -w net.ipv4.conf.eth0.arp_announce=2'],
      ['decap', 'xdp-decap --attach --interface eth0 --gue-port 6080'],
    ]);
    expect(r.checks[1].detail).toBe('rp_filter on eth0 is 1 (strict; the larger of all 1 and eth0 0): strict filtering drops clients whose route back leaves by another interface');
    expect(runChecks(['10.0.0.21'], 'ipip', ['eth1'], host(good)).checks.at(-1)).toEqual({
      check: 'decap', subject: 'eth1', ok: false,
      detail: 'xdp-decap is not attached to eth1: encapsulated packets would reach the kernel, which has no tunnel for them',
      fix: 'xdp-decap --attach --interface eth1',
    });
    // arp_ignore above 2 on `all` must come down there.
    expect(runChecks(['10.0.0.21'], 'dsr-l2', ['eth0'], host({ ...good, 'all.arp_ignore': 8 })).checks.find((c) => c.check === 'arp_ignore')?.fix)
      .toBe('sysctl -w net.ipv4.conf.all.arp_ignore=1');
  });
});

describe('xdp-decap status and command', () => {
  it('shows every counter STATS names, with rates under --watch', () => {
    const stats = Object.fromEntries(STATS.map((s, i) => [s, BigInt(i * 10)])) as Record<(typeof STATS)[number], bigint>;
    const text = formatStatus({ eth0: { slot: 6, id: 42, configuration: { tunnel_ipv4: '10.0.0.2', tunnel_ipv6: null, gue_port: 0 }, stats } });
    const [, head, , row] = text.split('\n');
    expect(head.split('│').map((c) => c.trim()).filter(Boolean)).toEqual(['INTERFACE', 'SLOT', 'TUNNEL IPV4', 'TUNNEL IPV6', 'GUE PORT', ...STATS.map((s) => s.replace(/_/g, ' ').toUpperCase())]);
    expect(row.split('│').map((c) => c.trim()).filter(Boolean)).toEqual(['eth0', '6', '10.0.0.2', '-', 'off', ...STATS.map((_, i) => String(i * 10))]);
    expect(formatStatus({})).toBe('xdp-decap is not attached to any interface in this network namespace.');
  });

  it('is xdp-decap, default slot 6, with --check among its actions', () => {
    const tool = subprogramTool(decap);
    expect(tool.name).toBe('xdp-decap');
    expect(tool.actions.map((a) => a.name)).toEqual(['attach', 'detach', 'status', 'check', 'run']);
    expect(decap.defaultSlot).toBe(6);
  });
});

describe('addresses and connected subnets from /proc', () => {
  it('reads an interface\'s IPv6 addresses with their scope and flags', () => {
    const text = '00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000002 04 40 00 82     eth0\nfe8000000000000000fc00fffe000001 04 40 20 80     eth0\n';
    expect(parseIfInet6(text).map((a) => [a.bytes.toString('hex'), a.ifindex, a.prefixLen, a.scope, a.flags, a.device])).toEqual([
      ['00000000000000000000000000000001', 1, 128, 0x10, 0x80, 'lo'],
      ['fd000000000000000000000000000002', 4, 64, 0, 0x82, 'eth0'],
      ['fe8000000000000000fc00fffe000001', 4, 64, 0x20, 0x80, 'eth0'],
    ]);
  });

  it('takes the routes without a gateway, not the local table\'s', () => {
    const route = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
      'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' +
      'eth1\t0000000A\t00000000\t0201\t0\t0\t0\t000000FF\t0\t0\t0\n';
    expect(parseRouteConnected(route).map((p) => [p.bytes.join('.'), p.length, p.device])).toEqual([['192.0.2.0', 24, 'eth0']]);
    const v6 = [
      'fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
      '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0',
      'fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0',
      'ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0',
    ].join('\n');
    const connected = parseIpv6RouteConnected(v6);
    expect(connected.map((p) => [p.bytes.toString('hex'), p.length, p.device])).toEqual([['fd000000000000000000000000000000', 64, 'eth0']]);
    expect(inPrefix(Buffer.from('fd000000000000000000000000000077', 'hex'), connected[0])).toBe(true);
    expect(inPrefix(Buffer.from('fd010000000000000000000000000077', 'hex'), connected[0])).toBe(false);
    const [v4] = parseRouteConnected(route);
    expect([inPrefix(Buffer.from([192, 0, 2, 200]), v4), inPrefix(Buffer.from([192, 0, 3, 1]), v4), inPrefix(Buffer.alloc(16), v4)]).toEqual([true, false, false]);
  });
});
