// Interface choice from fixture copies of /proc/net and /sys/class/net.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chooseInterfaces, defaultRouteInterfaces, interfaceProblems, treeView, type SystemView } from '../../src/service/interfaces.js';

let dir: string;
let view: SystemView;

const ROUTE_HEAD = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
const v4 = (iface: string, dest: string, mask: string, flags = '0003') => `${iface}\t${dest}\t010200C0\t${flags}\t0\t0\t0\t${mask}\t0\t0\t0\n`;
const v6 = (iface: string, dest: string, plen: string, flags: string) =>
  `${dest} ${plen} ${'0'.repeat(32)} 00 ${'0'.repeat(32)} 00000400 00000001 00000000 ${flags} ${iface.padStart(8)}\n`;
const ZERO6 = '0'.repeat(32);

function file(path: string, text: string): void {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), text);
}

function iface(name: string, opts: { up?: boolean; loopback?: boolean; mtu?: number; slaves?: string[] } = {}): void {
  const flags = (opts.up === false ? 0 : 0x1003) | (opts.loopback ? 0x8 : 0);
  file(`sys/class/net/${name}/flags`, `0x${flags.toString(16)}\n`);
  file(`sys/class/net/${name}/mtu`, `${opts.mtu ?? 1500}\n`);
  if (opts.slaves) {
    file(`proc/net/bonding/${name}`, `Bonding Mode: active-backup\n\n${opts.slaves.map((s) => `Slave Interface: ${s}\nMII Status: up\n\n`).join('')}`);
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'xdplb-sys-'));
  view = treeView(dir);
  file('osrelease', '6.18.44\n');
  file('proc/net/route', ROUTE_HEAD);
  file('proc/net/ipv6_route', '');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('default routes', () => {
  it('takes the IPv4 and IPv6 default-route interfaces, IPv4 first, once each', () => {
    file('proc/net/route', ROUTE_HEAD + v4('eth1', '000200C0', '00FFFFFF') + v4('eth0', '00000000', '00000000'));
    file('proc/net/ipv6_route',
      v6('eth2', 'fd000000000000000000000000000000', '40', '00000001') +
      v6('eth3', ZERO6, '00', '00000003') + v6('eth0', ZERO6, '00', '00000003') +
      v6('lo', ZERO6, '00', '00200200'));
    expect(defaultRouteInterfaces(view)).toEqual(['eth0', 'eth3']);
  });

  it('ignores routes that are not up', () => {
    file('proc/net/route', ROUTE_HEAD + v4('eth0', '00000000', '00000000', '0002'));
    expect(defaultRouteInterfaces(view)).toEqual([]);
  });
});

describe('chooseInterfaces', () => {
  it('keeps a listed set as it is', () => {
    expect(chooseInterfaces(['eth5'], view).interfaces).toEqual(['eth5']);
  });

  it('auto: the default-route interface, with the reason', () => {
    iface('eth0');
    file('proc/net/route', ROUTE_HEAD + v4('eth0', '00000000', '00000000'));
    expect(chooseInterfaces('auto', view)).toEqual({ interfaces: ['eth0'], reasons: ['eth0: carries a default route'] });
  });

  it('auto: never loopback', () => {
    iface('lo', { loopback: true });
    file('proc/net/route', ROUTE_HEAD + v4('lo', '00000000', '00000000'));
    const c = chooseInterfaces('auto', view);
    expect(c.interfaces).toEqual([]);
    expect(c.reasons).toEqual(['lo: carries a default route but is loopback: left out']);
  });

  it('auto: a bond itself where the kernel runs XDP on bonds', () => {
    iface('bond0', { slaves: ['eth0', 'eth1'] });
    file('proc/net/route', ROUTE_HEAD + v4('bond0', '00000000', '00000000'));
    expect(chooseInterfaces('auto', view).interfaces).toEqual(['bond0']);
  });

  it('auto: a bond\'s members on an older kernel', () => {
    file('osrelease', '5.10.0-28-amd64\n');
    iface('bond0', { slaves: ['eth0', 'eth1'] });
    file('proc/net/route', ROUTE_HEAD + v4('bond0', '00000000', '00000000'));
    const c = chooseInterfaces('auto', view);
    expect(c.interfaces).toEqual(['eth0', 'eth1']);
    expect(c.reasons[0]).toBe('bond0: carries a default route; a bond on a kernel without XDP on bonds: its members eth0, eth1');
  });
});

describe('interfaceProblems', () => {
  it('finds nothing wrong with an up interface', () => {
    iface('eth0');
    expect(interfaceProblems('eth0', 'native', view)).toEqual([]);
  });
  it('names a missing, down or loopback interface', () => {
    iface('eth1', { up: false });
    iface('lo', { loopback: true });
    expect(interfaceProblems('eth9', 'auto', view)).toEqual(['eth9: no such interface']);
    expect(interfaceProblems('eth1', 'auto', view)).toEqual(['eth1: is down']);
    expect(interfaceProblems('lo', 'skb', view)).toEqual(['lo: is loopback']);
  });
  it('checks the MTU against native XDP only', () => {
    iface('eth0', { mtu: 9000 });
    expect(interfaceProblems('eth0', 'native', view)).toEqual([
      'eth0: MTU 9000 is above 3498, the most native XDP takes; lower it or use mode skb',
    ]);
    expect(interfaceProblems('eth0', 'skb', view)).toEqual([]);
  });
});
