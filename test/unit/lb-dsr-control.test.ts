// The balancer's control plane for direct server return, without a kernel:
// dsr-l2 backends checked against the connected subnets, a DSR backend's
// port, and the status text's forwarding and DSR counters.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/programs/lb/config.js';
import { dsrL2Unreachable } from '../../src/programs/lb/reach.js';
import { formatStatus } from '../../src/programs/lb/cli.js';
import { COUNTER_NAMES, type LbCounters } from '../../src/programs/lb/layout.js';
import type { LbStatus } from '../../src/programs/lb/status.js';
import type { Prefix } from '../../src/net/addresses.js';

const CONNECTED: Prefix[] = [
  { family: 4, bytes: Buffer.from([10, 0, 0, 0]), length: 24, device: 'eth0' },
  { family: 6, bytes: Buffer.from('fd000000000000000000000000000000', 'hex'), length: 64, device: 'eth0' },
];

describe('dsr-l2 backends must be neighbours', () => {
  const config = (backends: object[], forwarding = 'dsr-l2', address = '10.0.0.100') =>
    validateConfig({ encap_source_ipv4: '10.0.0.10', vips: [{ address, port: 80, forwarding, backends }] });

  it('takes backends on a connected subnet, or given by MAC; other modes are routed and not checked', () => {
    expect(dsrL2Unreachable(config([{ address: '10.0.0.2' }, { address: '10.0.0.254' }]), CONNECTED)).toEqual([]);
    expect(dsrL2Unreachable(config([{ address: '10.9.0.2', mac: '02:00:00:00:00:02' }]), CONNECTED)).toEqual([]);
    expect(dsrL2Unreachable(config([{ address: '10.9.0.2' }], 'ipip'), CONNECTED)).toEqual([]);
    expect(dsrL2Unreachable(config([{ address: 'fd00::77' }], 'dsr-l2', 'fd00::100'), CONNECTED)).toEqual([]);
  });

  it('names every one that is not, with the subnets it could be on', () => {
    expect(dsrL2Unreachable(config([{ address: '10.0.0.2' }, { address: '10.0.1.2' }]), CONNECTED)).toEqual([
      'vips[0].backends[1].address: forwarding "dsr-l2" only changes the destination MAC, so a backend must be on a subnet this ' +
        'network namespace reaches without a router (10.0.0.0/24), got \'10.0.1.2\' (give its "mac" if it is a neighbour all the same)',
    ]);
    expect(dsrL2Unreachable(config([{ address: 'fd01::2' }], 'dsr-l2', 'fd00::100'), CONNECTED.slice(0, 1))[0]).toMatch(
      /reaches without a router \(none of IPv6\), got 'fd01::2'/,
    );
  });
});

describe('a DSR backend\'s port', () => {
  it('is the VIP\'s: given another, the config is refused naming the key', () => {
    expect(() => validateConfig({ vips: [{ address: '10.0.0.100', port: 80, forwarding: 'dsr-l2', backends: [{ address: '10.0.0.2', port: 8080 }] }] }))
      .toThrow('vips[0].backends[0].port: forwarding "dsr-l2" hands the backend the client\'s packet unchanged, to the VIP\'s port: expected 80 (or no port), got 8080');
    expect(validateConfig({ vips: [{ address: '10.0.0.100', port: 80, forwarding: 'dsr-l2', backends: [{ address: '10.0.0.2', port: 80 }] }]}).vips[0].backends[0].port).toBe(80);
  });
});

describe('xdp-lb --status text', () => {
  const zero = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0n])) as LbCounters;
  const status: LbStatus = {
    loaded: true, interfaces: { eth0: { slot: 7, id: 9 } }, orphan: false,
    nat: { port_min: 1024, port_max: 32767 }, timeouts: { tcp_idle_s: 300, udp_idle_s: 60, time_wait_s: 60 },
    connections: 0, connections_max: 262144, nat_ports: 0, nat_ports_max: 262144, service: null, bgp: null,
    vips: [
      { id: 0, address: '10.0.0.20', port: 80, protocol: 'tcp', forwarding: 'dsr-l2', table_size: 7, counters: { ...zero, packets: 5n }, backends: [] },
      {
        id: 1, address: 'fd00::22', port: 80, protocol: 'tcp', forwarding: 'gue', encap_source_ipv6: 'fd09::/112', gue_port: 6080, table_size: 7,
        counters: { ...zero, encapsulated: 11n, too_big: 2n, icmp_forwarded: 3n, bad_checksum: 4n },
        backends: [{ id: 3, address: 'fd00::2', port: 80, weight: 1, removed: false, counters: zero }],
      },
    ],
  };

  it('shows each VIP\'s forwarding, the DSR counters, and the outer sources of encapsulating VIPs', () => {
    const lines = formatStatus(status).split('\n');
    const cells = (line: string) => line.split('│').map((c) => c.trim()).slice(1, -1);
    expect(cells(lines[3]).slice(0, 2).concat(cells(lines[3]).slice(-4))).toEqual(['VIP / BACKEND', '', 'BAD CHECKSUM', 'ENCAPSULATED', 'TOO BIG', 'ICMP FORWARDED']);
    expect(cells(lines[5]).slice(0, 3)).toEqual(['tcp:10.0.0.20:80', 'dsr-l2, table 7', '5']);
    expect(cells(lines[6]).slice(0, 2).concat(cells(lines[6]).slice(-4))).toEqual(['tcp:[fd00::22]:80', 'gue, table 7', '4', '11', '2', '3']);
    expect(lines.at(-1)).toBe('tcp:[fd00::22]:80: gue to port 6080, outer source fd09::/112');
  });
});
