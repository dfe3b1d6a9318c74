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
    ['unknown key', cfg([{ ...VIP, weight: 2 }]), 'vips[0].weight: unknown key: expected one of address, port, protocol, table_size, backends'],
    ['bad MAC', cfg([{ ...VIP, backends: [{ address: '10.0.0.2', mac: '02:00:00' }] }]), "vips[0].backends[0].mac: expected a MAC address like 02:00:00:00:00:01, got '02:00:00'"],
    ['NAT port range upside down', { nat: { ...NAT, port_min: 3000, port_max: 2000 } }, 'nat.port_max: expected at least nat.port_min (3000), got 2000'],
    ['not an object', [1, 2], 'config: expected an object, got [1,2]'],
  ];
  for (const [what, input, message] of bad) {
    it(`rejects ${what}`, () => expect(() => validateConfig(input)).toThrow(message));
  }

  it('names malformed JSON with its line and column', () => {
    expect(() => parseConfig('{\n  "vips": [\n    { "address": "10.0.0.10",, }\n  ]\n}\n', 'lb.json')).toThrow(
      /^lb\.json: malformed JSON at line 3 column 30: Expected double-quoted property name$/,
    );
    expect(() => parseConfig('{"vips": [', 'x.json')).toThrow(/^x\.json: malformed JSON at line 1 column 11: /);
    expect(() => parseConfig('{"vips": 3}', 'x.json')).toThrow('x.json: vips: expected a list of VIPs, got 3');
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
  ];
  for (const [what, input, message] of bad) {
    it(`rejects ${what}`, () => expect(() => validateConfig(input)).toThrow(message));
  }
});

describe('lb small edits', () => {
  it('parses VIP and backend references', () => {
    expect(parseVipRef('tcp:10.0.0.10:8000')).toEqual({ address: '10.0.0.10', port: 8000, protocol: 'tcp' });
    expect(parseVipRef('udp:[fd00::10]:53')).toEqual({ address: 'fd00::10', port: 53, protocol: 'udp' });
    expect(parseVipRef('10.0.0.10:80')).toEqual({ address: '10.0.0.10', port: 80, protocol: 'tcp' });
    expect(parseBackendRefs('10.0.0.2,10.0.0.3:8080,[fd00::2]:81,fd00::3')).toEqual([
      { address: '10.0.0.2' }, { address: '10.0.0.3', port: 8080 }, { address: 'fd00::2', port: 81 }, { address: 'fd00::3' },
    ]);
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
});
