// Which VIPs are addresses of the balancer's network namespace, read from
// the kernel's /proc files (their text as a namespace with an address, a
// local range and IPv6 shows them), and the warning for the others.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/programs/lb/config.js';
import { parseFibTrie, parseIfInet6, vipWarnings } from '../../src/programs/lb/local.js';

const FIB_TRIE = `Main:
  +-- 0.0.0.0/1 2 0 2
     +-- 10.0.0.0/9 2 0 2
        +-- 10.9.0.0/24 2 0 2
           +-- 10.9.0.0/31 1 0 0
              |-- 10.9.0.0
                 /24 link UNICAST
              |-- 10.9.0.1
                 /32 host LOCAL
           |-- 10.9.0.255
              /32 link BROADCAST
        |-- 10.77.0.0
           /16 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/1 2 0 2
     +-- 10.0.0.0/9 2 0 2
        +-- 10.9.0.0/24 2 0 2
           +-- 10.9.0.0/31 1 0 0
              |-- 10.9.0.1
                 /32 host LOCAL
`;

const IF_INET6 = `00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000009 03 40 00 82       d0
`;

const ip = (a: string) => a.split('.').reduce((n, b) => n * 256 + Number(b), 0);

describe('lb local addresses', () => {
  it('reads the local routes of /proc/net/fib_trie, addresses and ranges, and the addresses of /proc/net/if_inet6', () => {
    expect(parseFibTrie(FIB_TRIE)).toEqual([
      [ip('10.9.0.1'), 32], [ip('10.77.0.0'), 16], [ip('127.0.0.0'), 8], [ip('127.0.0.1'), 32], [ip('10.9.0.1'), 32],
    ]);
    expect([...parseIfInet6(IF_INET6)]).toEqual(['::1', 'fd00::9']);
  });

  it('warns once per address of VIPs that are not local, naming them and what to do', () => {
    const local = { v4: parseFibTrie(FIB_TRIE), v6: parseIfInet6(IF_INET6) };
    const vip = (address: string, port: number, protocol = 'tcp') => ({ address, port, protocol, backends: [{ address: address.includes(':') ? 'fd00::2' : '10.9.0.2' }] });
    const config = validateConfig({
      nat: { source_ipv4: '10.9.0.1', source_ipv6: 'fd00::9' },
      vips: [vip('10.9.0.1', 80), vip('10.77.3.4', 80), vip('10.9.0.2', 80), vip('10.9.0.2', 53, 'udp'), vip('fd00::9', 80), vip('fd00::a', 80)],
    });
    expect(vipWarnings(config, local)).toEqual([
      'VIPs tcp:10.9.0.2:80, udp:10.9.0.2:53: 10.9.0.2 is not an address of this network namespace, so nothing here answers ARP for it: ' +
        'add it to an interface (ip address add 10.9.0.2/32 dev lo) or have it routed to this host',
      'VIP tcp:[fd00::a]:80: fd00::a is not an address of this network namespace, so nothing here answers ND for it: ' +
        'add it to an interface (ip address add fd00::a/128 dev lo) or have it routed to this host',
    ]);
    expect(vipWarnings(config, { v4: [[0, 0]], v6: new Set(['fd00::9', 'fd00::a']) })).toEqual([]);
  });
});
