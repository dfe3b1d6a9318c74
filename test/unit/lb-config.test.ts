// The load balancer's config: defaults, normalization, and an error naming
// the key path and what was expected for every kind of bad input.
import { describe, expect, it } from 'vitest';
import { parseConfig, validateConfig } from '../../src/programs/lb/config.js';
import { editConfig, parseBackendRefs, parseVipRef, parseWeight } from '../../src/programs/lb/edit.js';
import { addrBytes, addrText } from '../../src/programs/lb/layout.js';

const NAT = { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' };
const VIP = { address: '10.0.0.10', port: 8000, protocol: 'tcp', backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3', port: 8080, weight: 3 }] };
const cfg = (vips: unknown[], extra: Record<string, unknown> = {}) => ({ nat: NAT, vips, ...extra });

describe('lb config', () => {
  it('fills defaults: backend port from the VIP, weight 1, table 65537, NAT ports and timeouts', () => {
    expect(validateConfig(cfg([VIP]))).toEqual({
      nat: { ...NAT, port_min: 1024, port_max: 32767 },
      timeouts: { tcp_idle_s: 300, udp_idle_s: 60, time_wait_s: 60 },
      vips: [{
        address: '10.0.0.10', port: 8000, protocol: 'tcp', table_size: 65537,
        backends: [{ address: '10.0.0.2', port: 8000, weight: 1 }, { address: '10.0.0.3', port: 8080, weight: 3 }],
      }],
    });
  });

  it('takes one address on several ports as several backends', () => {
    const ports = [8000, 8001, 8002];
    expect(validateConfig(cfg([{ ...VIP, backends: ports.map((port) => ({ address: '10.0.0.2', port })) }])).vips[0].backends.map((b) => b.port)).toEqual(ports);
  });

  it('writes IPv6 addresses in canonical form (RFC 5952)', () => {
    const c = validateConfig({ nat: { source_ipv6: 'FD00:0:0:0:0:0:0:10' }, vips: [{ address: 'fd00:0::0:10', port: 80, backends: [{ address: 'fd00::0:2' }] }] });
    expect(c.nat.source_ipv6).toBe('fd00::10');
    expect(c.vips[0].address).toBe('fd00::10');
    expect(c.vips[0].backends[0].address).toBe('fd00::2');
    expect(addrText(addrBytes('2001:db8::ffff:1.2.3.4'), 6)).toBe('2001:db8::ffff:102:304');
    expect(addrText(addrBytes('1:0:0:2:0:0:0:3'), 6)).toBe('1:0:0:2::3');
  });

  const bad: Array<[string, unknown, string]> = [
    ['invalid VIP address', cfg([{ ...VIP, address: '10.0.0.300' }]), "vips[0].address: expected an IPv4 or IPv6 address, got '10.0.0.300'"],
    ['invalid backend address', cfg([{ ...VIP, backends: [{ address: 'backend-1' }] }]), "vips[0].backends[0].address: expected an IPv4 address, got 'backend-1'"],
    ['port 0', cfg([{ ...VIP, backends: [VIP.backends[0], { address: '10.0.0.3', port: 0 }] }]), 'vips[0].backends[1].port: expected a whole number from 1 to 65535, got 0'],
    ['port 65536', cfg([{ ...VIP, port: 65536 }]), 'vips[0].port: expected a whole number from 1 to 65535, got 65536'],
    ['port as a string', cfg([{ ...VIP, port: '80' }]), "vips[0].port: expected a whole number from 1 to 65535, got '80'"],
    ['unknown protocol', cfg([{ ...VIP, protocol: 'sctp' }]), `vips[0].protocol: expected "tcp" or "udp", got 'sctp'`],
    ['duplicate VIP', cfg([VIP, { ...VIP, address: '10.0.0.010'.replace('010', '10') }]), 'vips[1]: duplicate VIP tcp:10.0.0.10:8000 (also vips[0])'],
    ['VIP without backends', cfg([{ ...VIP, backends: [] }]), 'vips[0].backends: expected a non-empty list of backends, got []'],
    ['VIP with backends missing', cfg([{ address: '10.0.0.10', port: 80 }]), 'vips[0].backends: expected a non-empty list of backends, got undefined'],
    ['negative weight', cfg([{ ...VIP, backends: [{ address: '10.0.0.2', weight: -1 }] }]), 'vips[0].backends[0].weight: expected a whole number from 0 to 65535, got -1'],
    ['fractional weight', cfg([{ ...VIP, backends: [{ address: '10.0.0.2', weight: 1.5 }] }]), 'vips[0].backends[0].weight: expected a whole number from 0 to 65535, got 1.5'],
    ['IPv6 backend for an IPv4 VIP', cfg([{ ...VIP, backends: [{ address: 'fd00::2' }] }]), "vips[0].backends[0].address: expected an IPv4 address, got 'fd00::2'"],
    ['IPv6 VIP without an IPv6 NAT source', { nat: { source_ipv4: '10.0.0.10' }, vips: [{ ...VIP, address: 'fd00::10', backends: [{ address: 'fd00::2' }] }] }, 'vips[0].address: an IPv6 VIP needs nat.source_ipv6'],
    ['IPv4 NAT source that is IPv6', { nat: { source_ipv4: 'fd00::10' }, vips: [] }, "nat.source_ipv4: expected an IPv4 address, got 'fd00::10'"],
    ['table size not a prime', cfg([{ ...VIP, table_size: 65536 }]), 'vips[0].table_size: expected a prime number (such as 65537), got 65536'],
    ['duplicate backend', cfg([{ ...VIP, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.2', port: 8000 }] }]), 'vips[0].backends[1]: duplicate backend 10.0.0.2 port 8000 (also backends[0])'],
    ['duplicate backend among others on the same address', cfg([{ ...VIP, backends: [{ address: '10.0.0.2', port: 1 }, { address: '10.0.0.2', port: 2 }, { address: '10.0.0.3', port: 2 }, { address: '10.0.0.2', port: 2 }] }]), 'vips[0].backends[3]: duplicate backend 10.0.0.2 port 2 (also backends[1])'],
    ['unknown key', cfg([{ ...VIP, weight: 2 }]), 'vips[0].weight: unknown key: expected one of address, port, protocol, table_size, backends, health'],
    ['bad MAC', cfg([{ ...VIP, backends: [{ address: '10.0.0.2', mac: '02:00:00' }] }]), "vips[0].backends[0].mac: expected a MAC address like 02:00:00:00:00:01, got '02:00:00'"],
    ['NAT port range upside down', { nat: { ...NAT, port_min: 3000, port_max: 2000 } }, 'nat.port_max: expected at least nat.port_min (3000), got 2000'],
    ['not an object', [1, 2], 'config: expected an object, got [1,2]'],
  ];
  for (const [what, input, message] of bad) {
    it(`rejects ${what}`, () => expect(() => validateConfig(input)).toThrow(message));
  }

  it('names malformed JSON with its line and column', () => {
    expect(() => parseConfig('{\n  "vips": [\n    { "address": "10.0.0.10",, }\n  ]\n}\n', 'lb.json')).toThrow(
      'lb.json:3:30: invalid JSON: expected a key in double quotes',
    );
    expect(() => parseConfig('{"vips": [', 'x.json')).toThrow("x.json:1:11: invalid JSON: expected ']'");
    expect(() => parseConfig('{"vips": 3}', 'x.json')).toThrow('x.json:1:10: vips: expected a list of VIPs, got 3');
    // As strict as the service's config: a key given twice is refused.
    expect(() => parseConfig('{"vips": [], "vips": []}', 'x.json')).toThrow('x.json:1:14: vips: given twice');
    expect(() => parseConfig('\ufeff{"vips": 3}', 'x.json')).toThrow('x.json:1:10: vips: expected a list of VIPs, got 3');
  });
});

describe('lb forwarding (direct server return)', () => {
  const DSR = { address: '10.0.0.100', port: 80, backends: [{ address: '10.0.0.2' }] };

  it('takes the top level\'s forwarding keys as every VIP\'s defaults; a NAT VIP keeps none of them', () => {
    const c = validateConfig({
      nat: { source_ipv4: '10.0.0.10' }, forwarding: 'gue', encap_source_ipv4: '10.9.0.0/24', encap_source_ipv6: 'FD09:0::/112', gue_port: 7000,
      vips: [DSR, { ...DSR, port: 81, forwarding: 'ipip', encap_source_ipv4: '10.9.1.1' }, { ...DSR, port: 82, forwarding: 'dsr-l2' }, { ...DSR, port: 83, forwarding: 'nat' }],
    });
    expect(c.vips.map(({ forwarding, encap_source_ipv4, encap_source_ipv6, gue_port }) => ({ forwarding, encap_source_ipv4, encap_source_ipv6, gue_port }))).toEqual([
      { forwarding: 'gue', encap_source_ipv4: '10.9.0.0/24', encap_source_ipv6: 'fd09::/112', gue_port: 7000 },
      { forwarding: 'ipip', encap_source_ipv4: '10.9.1.1', encap_source_ipv6: 'fd09::/112', gue_port: undefined },
      { forwarding: 'dsr-l2', encap_source_ipv4: undefined, encap_source_ipv6: undefined, gue_port: undefined },
      { forwarding: undefined, encap_source_ipv4: undefined, encap_source_ipv6: undefined, gue_port: undefined },
    ]);
    expect(Object.keys(c.vips[3]).sort()).toEqual(['address', 'backends', 'port', 'protocol', 'table_size']);
  });

  it('needs no NAT source for a DSR VIP, and lets an IPv4 VIP encapsulate to IPv6 backends', () => {
    const c = validateConfig({ encap_source_ipv6: 'fd00::10', vips: [{ ...DSR, forwarding: 'gue', backends: [{ address: 'fd00::2' }] }] });
    expect(c.vips[0]).toMatchObject({ forwarding: 'gue', gue_port: 6080, backends: [{ address: 'fd00::2', port: 80, weight: 1 }] });
  });

  const bad: Array<[string, unknown, string]> = [
    ['an unknown mode', { vips: [{ ...DSR, forwarding: 'dsr' }] }, `vips[0].forwarding: expected one of "nat", "dsr-l2", "ipip", "gue", got 'dsr'`],
    ['an unknown mode at the top level', { forwarding: 'tunnel', vips: [] }, `forwarding: expected one of "nat", "dsr-l2", "ipip", "gue", got 'tunnel'`],
    ['dsr-l2 to a backend of the other family', { vips: [{ ...DSR, forwarding: 'dsr-l2', backends: [{ address: 'fd00::2' }] }] },
      "vips[0].backends[0].address: forwarding \"dsr-l2\" leaves the packet as it is: it cannot reach an IPv6 backend from an IPv4 VIP, got 'fd00::2'"],
    ['an IPv6 VIP encapsulating to an IPv4 backend', { encap_source_ipv4: '10.0.0.10', vips: [{ ...DSR, address: 'fd00::100', forwarding: 'ipip' }] },
      "vips[0].backends[0].address: forwarding \"ipip\" cannot reach an IPv4 backend from an IPv6 VIP (IPv6 in IPv4 is not sent), got '10.0.0.2'"],
    ['an encapsulation without a source of the backend\'s family', { encap_source_ipv6: 'fd00::10', vips: [{ ...DSR, forwarding: 'gue' }] },
      'vips[0].encap_source_ipv4: forwarding "gue" to the IPv4 backend 10.0.0.2 needs an IPv4 encapsulation source (here or at the top level), got none'],
    ['a source of the wrong family', { vips: [{ ...DSR, forwarding: 'ipip', encap_source_ipv4: 'fd00::10' }] },
      "vips[0].encap_source_ipv4: expected an IPv4 address or prefix (10.9.0.1, 10.9.0.0/24), got 'fd00::10'"],
    ['a source prefix with host bits set', { encap_source_ipv4: '10.9.0.1/24', vips: [] }, "encap_source_ipv4: expected the IPv4 prefix's host bits to be zero, got '10.9.0.1/24'"],
    ['an IPv6 source prefix shorter than /96', { encap_source_ipv6: 'fd09::/64', vips: [] },
      "encap_source_ipv6: expected an IPv6 address or a prefix of /96 or longer (fd09::1, fd09::/112), got 'fd09::/64'"],
    ['an unspecified source', { encap_source_ipv4: '0.0.0.0', vips: [] }, "encap_source_ipv4: expected an IPv4 source that is not unspecified, got '0.0.0.0'"],
    ['GUE port 0', { encap_source_ipv4: '10.0.0.10', vips: [{ ...DSR, forwarding: 'gue', gue_port: 0 }] }, 'vips[0].gue_port: expected a whole number from 1 to 65535, got 0'],
    ['a NAT VIP without a NAT source still', { forwarding: 'nat', vips: [DSR] }, 'vips[0].address: an IPv4 VIP needs nat.source_ipv4'],
    ['a stateless VIP that is not gue', { encap_source_ipv4: '10.0.0.10', vips: [{ ...DSR, forwarding: 'ipip', stateless: true }] },
      'vips[0].stateless: a stateless VIP needs "forwarding": "gue" (its backends\' decapsulator chains its flows), got forwarding "ipip"'],
    ['stateless that is not a boolean', { stateless: 'yes', vips: [] }, "stateless: expected true or false, got 'yes'"],
    ['a chaining window on a VIP that is not stateless', { encap_source_ipv4: '10.0.0.10', vips: [{ ...DSR, forwarding: 'gue', chain_window_s: 60 }] },
      'vips[0].chain_window_s: only for a stateless VIP ("stateless": true), got 60'],
    ['a chaining window of 0', { chain_window_s: 0, vips: [] }, 'chain_window_s: expected a whole number from 1 to 86400, got 0'],
    ['a chaining window over a day', { encap_source_ipv4: '10.0.0.10', vips: [{ ...DSR, forwarding: 'gue', stateless: true, chain_window_s: 86401 }] },
      'vips[0].chain_window_s: expected a whole number from 1 to 86400, got 86401'],
  ];
  for (const [what, input, message] of bad) {
    it(`rejects ${what}`, () => expect(() => validateConfig(input)).toThrow(message));
  }

  it('makes gue VIPs stateless by the top level\'s default, with its window; others stay as they were', () => {
    const c = validateConfig({
      nat: { source_ipv4: '10.0.0.10' }, encap_source_ipv4: '10.0.0.10', stateless: true, chain_window_s: 120,
      vips: [{ ...DSR, forwarding: 'gue' }, { ...DSR, port: 81, forwarding: 'gue', chain_window_s: 30 }, { ...DSR, port: 82, forwarding: 'gue', stateless: false },
        { ...DSR, port: 83, forwarding: 'ipip' }, { ...DSR, port: 84 }],
    });
    expect(c.vips.map(({ stateless, chain_window_s }) => ({ stateless, chain_window_s }))).toEqual([
      { stateless: true, chain_window_s: 120 }, { stateless: true, chain_window_s: 30 }, { stateless: undefined, chain_window_s: undefined },
      { stateless: undefined, chain_window_s: undefined }, { stateless: undefined, chain_window_s: undefined },
    ]);
    expect(validateConfig({ encap_source_ipv4: '10.0.0.10', vips: [{ ...DSR, forwarding: 'gue', stateless: true }] }).vips[0].chain_window_s).toBe(300);
  });
});

describe('lb small edits', () => {
  it('parses VIP and backend references', () => {
    expect(parseVipRef('tcp:10.0.0.10:8000')).toEqual({ address: '10.0.0.10', port: 8000, protocol: 'tcp' });
    expect(parseVipRef('udp:[fd00::10]:53')).toEqual({ address: 'fd00::10', port: 53, protocol: 'udp' });
    // The protocol is part of the VIP: never guessed.
    expect(() => parseVipRef('10.0.0.10:80')).toThrow("invalid VIP '10.0.0.10:80': expected PROTOCOL:ADDRESS:PORT");
    expect(parseBackendRefs('10.0.0.3:8080,[fd00::2]:81')).toEqual([{ address: '10.0.0.3', port: 8080 }, { address: 'fd00::2', port: 81 }]);
    expect(parseBackendRefs('10.0.0.2,fd00::3')).toEqual([{ address: '10.0.0.2' }, { address: 'fd00::3' }]);
    // Some with a port and some without: ambiguous, refused.
    expect(() => parseBackendRefs('10.0.0.2,10.0.0.3:8000')).toThrow("invalid --backend '10.0.0.2,10.0.0.3:8000': give every backend a port or none");
    expect(() => parseVipRef('sctp:10.0.0.10:80')).toThrow("invalid VIP 'sctp:10.0.0.10:80': expected PROTOCOL:ADDRESS:PORT like tcp:10.0.0.10:8000 or udp:[fd00::10]:53");
    expect(() => parseVipRef('tcp:10.0.0.10:0')).toThrow("invalid VIP 'tcp:10.0.0.10:0'");
    expect(() => parseBackendRefs('10.0.0.2,')).toThrow("invalid backend '': expected ADDRESS[:PORT]");
    expect(() => parseWeight('-1')).toThrow("invalid weight '-1': expected a whole number from 0 to 65535");
  });

  const base = validateConfig(cfg([VIP]));
  const vip = parseVipRef('tcp:10.0.0.10:8000');

  it('adds, re-weights and removes backends; adds and removes VIPs', () => {
    const added = editConfig(base, { kind: 'backend-add', vip, backends: [{ address: '10.0.0.4' }], weight: 2 });
    expect(added.vips[0].backends[2]).toEqual({ address: '10.0.0.4', port: 8000, weight: 2 });
    const drained = editConfig(added, { kind: 'weight', vip, backends: [{ address: '10.0.0.4' }], weight: 0 });
    expect(drained.vips[0].backends[2].weight).toBe(0);
    expect(editConfig(drained, { kind: 'backend-del', vip, backends: [{ address: '10.0.0.4' }] })).toEqual(base);
    const two = editConfig(base, { kind: 'vip-add', vip: parseVipRef('udp:[fd00::10]:53'), backends: [{ address: 'fd00::2', port: 5353 }], weight: 1 });
    expect(two.vips[1]).toMatchObject({ address: 'fd00::10', protocol: 'udp', backends: [{ address: 'fd00::2', port: 5353, weight: 1 }] });
    expect(editConfig(two, { kind: 'vip-del', vip: parseVipRef('udp:[fd00::10]:53') })).toEqual(base);
  });

  it('refuses edits that name nothing, or would leave a VIP without backends', () => {
    expect(() => editConfig(base, { kind: 'vip-del', vip: parseVipRef('tcp:10.0.0.10:81') })).toThrow('no VIP tcp:10.0.0.10:81: expected one of tcp:10.0.0.10:8000');
    expect(() => editConfig(base, { kind: 'backend-del', vip, backends: [{ address: '10.0.0.9' }] })).toThrow('no backend 10.0.0.9 port 8000 in VIP tcp:10.0.0.10:8000');
    expect(() => editConfig(base, { kind: 'backend-add', vip, backends: [{ address: '10.0.0.2' }], weight: 1 })).toThrow('backend 10.0.0.2 port 8000 is already in VIP tcp:10.0.0.10:8000');
    expect(() => editConfig(base, { kind: 'vip-add', vip, backends: [{ address: '10.0.0.2' }], weight: 1 })).toThrow('VIP tcp:10.0.0.10:8000 already exists');
    const one = editConfig(base, { kind: 'backend-del', vip, backends: [{ address: '10.0.0.3', port: 8080 }] });
    expect(() => editConfig(one, { kind: 'backend-del', vip, backends: [{ address: '10.0.0.2' }] })).toThrow(/would leave VIP tcp:10\.0\.0\.10:8000 without backends/);
    expect(() => editConfig(base, { kind: 'vip-add', vip: parseVipRef('tcp:[fd00::1]:80'), backends: [{ address: '10.0.0.2' }], weight: 1 })).toThrow(
      "VIP tcp:[fd00::1]:80.backends[0].address: expected an IPv6 address, got '10.0.0.2'",
    );
  });

  it('names the flag, not the config key, wherever the key is in the message', () => {
    const v4only = validateConfig({ nat: { source_ipv4: '10.0.0.10' }, vips: [VIP] });
    const add = (vipText: string, backend: string) => () => editConfig(v4only, { kind: 'vip-add', vip: parseVipRef(vipText), backends: [{ address: backend }], weight: 1 });
    expect(add('tcp:[fd00::10]:80', 'fd00::2')).toThrow(/^VIP tcp:\[fd00::10\]:80: an IPv6 VIP needs --nat-source$/);
    const none = validateConfig({ nat: { source_ipv6: 'fd00::10' }, vips: [] });
    expect(() => editConfig(none, { kind: 'vip-add', vip, backends: [{ address: '10.0.0.2' }], weight: 1 })).toThrow(/^VIP tcp:10\.0\.0\.10:8000: an IPv4 VIP needs --nat-source$/);
  });
});

describe('lb health config', () => {
  const TCP = { type: 'tcp', interval_ms: 2000, timeout_ms: 1000, rise: 2, fall: 3 };
  const HTTP = { ...TCP, type: 'http', path: '/', expect_status: 200 };
  const backends = (c: unknown) => validateConfig(c).vips[0].backends;

  it('checks nothing without "health", and the rest of the config is as before', () => {
    expect(backends(cfg([VIP])).map((b) => 'health' in b)).toEqual([false, false]);
  });

  it('fills defaults per backend: TCP to the backend\'s own port, 2 s, 1 s, rise 2, fall 3; HTTP GET / expecting 200', () => {
    expect(backends(cfg([{ ...VIP, health: {} }])).map((b) => b.health)).toEqual([{ ...TCP, port: 8000 }, { ...TCP, port: 8080 }]);
    expect(backends(cfg([{ ...VIP, health: { type: 'http' } }])).map((b) => b.health)).toEqual([{ ...HTTP, port: 8000 }, { ...HTTP, port: 8080 }]);
  });

  it('lets a backend override the VIP\'s keys one by one, or turn its check off', () => {
    const vip = {
      ...VIP,
      health: { type: 'http', port: 9000, path: '/healthz', expect_status: '2xx', interval_ms: 500, timeout_ms: 200, rise: 1, fall: 5 },
      backends: [
        { address: '10.0.0.2', health: { fall: 2, expect_status: [200, 204] } },
        { address: '10.0.0.3', health: false },
        { address: '10.0.0.4', health: { type: 'tcp' } },
        { address: '10.0.0.5' },
      ],
    };
    const base = { type: 'http', port: 9000, path: '/healthz', expect_status: '2xx', interval_ms: 500, timeout_ms: 200, rise: 1, fall: 5 };
    expect(backends(cfg([vip])).map((b) => b.health)).toEqual([
      { ...base, fall: 2, expect_status: [200, 204] },
      undefined,
      { type: 'tcp', port: 9000, interval_ms: 500, timeout_ms: 200, rise: 1, fall: 5 },
      base,
    ]);
  });

  it('checks one backend of a VIP without health, over the defaults', () => {
    const vip = { ...VIP, backends: [{ address: '10.0.0.2', health: { type: 'http', path: '/up' } }, { address: '10.0.0.3', health: false }] };
    expect(backends(cfg([vip])).map((b) => b.health)).toEqual([{ ...HTTP, port: 8000, path: '/up' }, undefined]);
  });

  it('leaves the kernel\'s inputs alone: with health stripped, the same config as without', () => {
    const withHealth = validateConfig(cfg([{ ...VIP, health: { type: 'http' } }]));
    const stripped = { ...withHealth, vips: withHealth.vips.map((v) => ({ ...v, backends: v.backends.map(({ health: _, ...b }) => b) })) };
    expect(stripped).toEqual(validateConfig(cfg([VIP])));
  });

  const h = (health: unknown, backend?: unknown) => cfg([{ ...VIP, health, ...(backend ? { backends: [{ address: '10.0.0.2', health: backend }] } : {}) }]);
  const bad: Array<[string, unknown, string]> = [
    ['health that is true', h(true), 'vips[0].health: expected an object or false, got true'],
    ['an unknown health key', h({ kind: 'tcp' }), 'vips[0].health.kind: unknown key: expected one of type, port, path, expect_status, interval_ms, timeout_ms, rise, fall'],
    ['an unknown check type', h({ type: 'icmp' }), `vips[0].health.type: expected "tcp" or "http", got 'icmp'`],
    ['health port 0', h({ port: 0 }), 'vips[0].health.port: expected a whole number from 1 to 65535, got 0'],
    ['health port 65536 on a backend', h(undefined, { port: 65536 }), 'vips[0].backends[0].health.port: expected a whole number from 1 to 65535, got 65536'],
    ['a path without its slash', h({ type: 'http', path: 'healthz' }), `vips[0].health.path: expected a path starting with "/" in printable ASCII without spaces, got 'healthz'`],
    ['a path with a space', h({ type: 'http', path: '/a b' }), `vips[0].health.path: expected a path starting with "/" in printable ASCII without spaces, got '/a b'`],
    ['a path with a line break', h({ type: 'http', path: '/a\r\nX: y' }), 'vips[0].health.path: expected a path starting with "/" in printable ASCII without spaces, got \'/a\r\nX: y\''],
    ['a path on a TCP check', h({ path: '/' }), 'vips[0].health.path: only for "type": "http" checks'],
    ['an expected status on a backend\'s TCP check', h({ type: 'http' }, { type: 'tcp', expect_status: 200 }), 'vips[0].backends[0].health.expect_status: only for "type": "http" checks'],
    ['status 600', h({ type: 'http', expect_status: 600 }), 'vips[0].health.expect_status: expected an HTTP status from 100 to 599, a list of them or a class like "2xx", got 600'],
    ['status class 6xx', h({ type: 'http', expect_status: '6xx' }), `vips[0].health.expect_status: expected an HTTP status from 100 to 599, a list of them or a class like "2xx", got '6xx'`],
    ['an empty status list', h({ type: 'http', expect_status: [] }), 'vips[0].health.expect_status: expected an HTTP status from 100 to 599, a list of them or a class like "2xx", got []'],
    ['a status as text', h({ type: 'http', expect_status: '200' }), `vips[0].health.expect_status: expected an HTTP status from 100 to 599, a list of them or a class like "2xx", got '200'`],
    ['rise 0', h({ rise: 0 }), 'vips[0].health.rise: expected a whole number from 1 to 100, got 0'],
    ['fall 101', h(undefined, { fall: 101 }), 'vips[0].backends[0].health.fall: expected a whole number from 1 to 100, got 101'],
    ['an interval below 100 ms', h({ interval_ms: 50, timeout_ms: 20 }), 'vips[0].health.interval_ms: expected a whole number from 100 to 3600000, got 50'],
    ['a timeout of the interval', h({ interval_ms: 1000, timeout_ms: 1000 }), 'vips[0].health.timeout_ms: expected less than interval_ms (1000), got 1000'],
    ['an interval under the default timeout', h({ interval_ms: 500 }), 'vips[0].health.interval_ms: expected more than timeout_ms (1000), got 500'],
    ['a backend\'s timeout over the VIP\'s interval', h({ interval_ms: 500, timeout_ms: 100 }, { timeout_ms: 600 }), 'vips[0].backends[0].health.timeout_ms: expected less than interval_ms (500), got 600'],
    ['a backend\'s interval under the VIP\'s timeout', h({ interval_ms: 5000, timeout_ms: 3000 }, { interval_ms: 2000 }), 'vips[0].backends[0].health.interval_ms: expected more than timeout_ms (3000), got 2000'],
    ['a fractional timeout', h({ timeout_ms: 1.5 }), 'vips[0].health.timeout_ms: expected a whole number from 10 to 3600000, got 1.5'],
  ];
  for (const [what, input, message] of bad) {
    it(`rejects ${what}`, () => expect(() => validateConfig(input)).toThrow(message));
  }

  it('names the file with a health error, as with any other', () => {
    expect(() => parseConfig(JSON.stringify(h({ rise: 'two' })), 'lb.json')).toThrow(/^lb\.json:1:\d+: vips\[0\]\.health\.rise: expected a whole number from 1 to 100, got 'two'$/);
  });
});
