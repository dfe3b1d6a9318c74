// The BIRD driver's pure parts: the `bgp` config keys, the include file it
// generates, and BIRD's control-socket replies (texts as BIRD 2.0.12 sent
// them in the fleet lab) parsed into replies, configure outcomes and sessions.
import { describe, expect, it } from 'vitest';
import {
  BGP_DEFAULTS, BirdDriver, ReplyReader, configureOutcome, normalizePrefixes, parseBgpConfig, parseProtocol, renderInclude,
} from '../../src/programs/lb/bird.js';

describe('bgp config', () => {
  it("defaults to Debian's bird2 paths and names no peers", () => {
    expect(parseBgpConfig({})).toEqual({ socket: '/run/bird/bird.ctl', includeFile: '/run/bird/xdplb-vips.conf', protocol: 'xdplb_vips', peers: [], withdrawWaitMs: 2000 });
    expect(BGP_DEFAULTS).toEqual(parseBgpConfig({}));
  });

  it('takes every key', () => {
    expect(parseBgpConfig({ bird_socket: '/var/run/b.ctl', include_file: '/etc/bird/vips.conf', static_protocol: 'lb_vips', peers: ['router1', 'Router_2'], withdraw_wait_ms: 0 }))
      .toEqual({ socket: '/var/run/b.ctl', includeFile: '/etc/bird/vips.conf', protocol: 'lb_vips', peers: ['router1', 'Router_2'], withdrawWaitMs: 0 });
  });

  const bad: Array<[unknown, string]> = [
    [[], "bgp: expected an object, got []"],
    [null, 'bgp: expected an object, got null'],
    [{ socket: '/run/bird/bird.ctl' }, 'bgp.socket: unknown key: expected one of bird_socket, include_file, static_protocol, peers, withdraw_wait_ms'],
    [{ withdraw_wait_ms: 1.5 }, 'bgp.withdraw_wait_ms: expected a whole number of ms from 0 to 60000, got 1.5'],
    [{ withdraw_wait_ms: 60001 }, 'bgp.withdraw_wait_ms: expected a whole number of ms from 0 to 60000, got 60001'],
    [{ withdraw_wait_ms: '2000' }, "bgp.withdraw_wait_ms: expected a whole number of ms from 0 to 60000, got '2000'"],
    [{ bird_socket: 'bird.ctl' }, "bgp.bird_socket: expected an absolute file path, got 'bird.ctl'"],
    [{ include_file: '/etc/bird/' }, "bgp.include_file: expected an absolute file path, got '/etc/bird/'"],
    [{ include_file: 7 }, 'bgp.include_file: expected an absolute file path, got 7'],
    [{ static_protocol: 'xdplb-vips' }, "bgp.static_protocol: expected a BIRD protocol name (a letter or _, then letters, digits or _, at most 62), got 'xdplb-vips'"],
    [{ static_protocol: 'x'.repeat(63) }, `bgp.static_protocol: expected a BIRD protocol name (a letter or _, then letters, digits or _, at most 62), got '${'x'.repeat(63)}'`],
    [{ peers: 'router1' }, "bgp.peers: expected a list of BIRD protocol names, got 'router1'"],
    [{ peers: ['router1', '1router'] }, "bgp.peers[1]: expected a BIRD protocol name (a letter or _, then letters, digits or _, at most 62), got '1router'"],
    [{ peers: ['router1', 'router"; configure'] }, `bgp.peers[1]: expected a BIRD protocol name (a letter or _, then letters, digits or _, at most 62), got 'router"; configure'`],
    [{ peers: ['r1', 'r1'] }, "bgp.peers[1]: 'r1' is listed twice"],
    [{ peers: ['xdplb_vips6'] }, "bgp.peers[0]: 'xdplb_vips6' is one of xdplb's static protocols, not a BGP session"],
  ];
  for (const [value, message] of bad) {
    it(`refuses ${JSON.stringify(value)}`, () => {
      expect(() => parseBgpConfig(value)).toThrow(message);
    });
  }

  it('names the key under the path it is given, and checks a driver the same way', () => {
    expect(() => parseBgpConfig({ peers: [1] }, 'lb.bgp')).toThrow('lb.bgp.peers[0]: expected a BIRD protocol name');
    expect(() => new BirdDriver({ socket: 'bird.ctl', includeFile: '/x', protocol: 'p' })).toThrow("BirdDriver.bird_socket: expected an absolute file path, got 'bird.ctl'");
  });
});

describe('the include file', () => {
  it('holds both static protocols, routes canonical, sorted and once each', () => {
    expect(renderInclude('xdplb_vips', ['fd00:0::10', '10.0.0.10', '10.0.0.9/32', '10.0.0.10/32', '192.0.2.0/24', 'FD00::A/128', '2001:db8::/32', '10.0.0.10']))
      .toBe(`# Written by xdplb: the VIPs this balancer announces. Do not edit; it is
# rewritten whenever they change. Included by bird.conf (see xdplb docs/BGP.md).
protocol static xdplb_vips4 {
\tipv4;
\troute 10.0.0.9/32 blackhole;
\troute 10.0.0.10/32 blackhole;
\troute 192.0.2.0/24 blackhole;
}
protocol static xdplb_vips6 {
\tipv6;
\troute 2001:db8::/32 blackhole;
\troute fd00::a/128 blackhole;
\troute fd00::10/128 blackhole;
}
`);
  });

  it('keeps both protocols, empty, when nothing is announced', () => {
    expect(renderInclude('p', []).split('\n').slice(2).join('\n')).toBe('protocol static p4 {\n\tipv4;\n}\nprotocol static p6 {\n\tipv6;\n}\n');
  });

  it('is the same whatever the order and spelling of the same prefixes', () => {
    expect(renderInclude('p', ['fd00::10', '10.0.0.10'])).toBe(renderInclude('p', ['10.0.0.10/32', 'fd00:0:0:0:0:0:0:10/128']));
    expect(normalizePrefixes(['::ffff:10.0.0.1', '0.0.0.0/0', '::/0'])).toEqual({ v4: ['0.0.0.0/0'], v6: ['::/0', '::ffff:a00:1/128'] });
  });

  const bad: Array<[unknown, string]> = [
    ['10.0.0.300', "invalid VIP prefix '10.0.0.300': expected an IPv4 or IPv6 address with an optional /length, like 10.0.0.10 or fd00::10/128"],
    ['10.0.0.10/', "invalid VIP prefix '10.0.0.10/': expected an IPv4 or IPv6 address"],
    ['fe80::1%eth0', "invalid VIP prefix 'fe80::1%eth0': expected an IPv4 or IPv6 address"],
    [7, 'invalid VIP prefix 7: expected an IPv4 or IPv6 address'],
    ['10.0.0.10/33', "invalid VIP prefix '10.0.0.10/33': the length must be from 0 to 32"],
    ['fd00::/129', "invalid VIP prefix 'fd00::/129': the length must be from 0 to 128"],
    ['10.0.0.1/24', "invalid VIP prefix '10.0.0.1/24': host bits are set, expected 10.0.0.0/24"],
    ['fd00::1/64', "invalid VIP prefix 'fd00::1/64': host bits are set, expected fd00::/64"],
  ];
  for (const [prefix, message] of bad) {
    it(`refuses ${JSON.stringify(prefix)}`, () => {
      expect(() => renderInclude('p', ['10.0.0.10', prefix as string])).toThrow(message);
    });
  }

  it('rejects bad prefixes from announce() before touching the file or BIRD', async () => {
    const d = new BirdDriver({ socket: '/nonexistent/bird.ctl', includeFile: '/nonexistent/vips.conf', protocol: 'p' });
    await expect(d.announce(['10.0.0.1/24'])).rejects.toThrow("invalid VIP prefix '10.0.0.1/24': host bits are set, expected 10.0.0.0/24");
  });
});

describe("BIRD's replies", () => {
  const SHOW_ESTABLISHED = '2002-Name       Proto      Table      State  Since         Info\n'
    + '1002-router1    BGP        ---        up     19:05:38.938  Established   \n'
    + '1006-  BGP state:          Established\n     Neighbor address: 10.2.0.1\n     Neighbor AS:      65000\n'
    + '     Local AS:         65001\n     Hold timer:       2.733/3\n   Channel ipv4\n     State:          UP\n \n0000 \n';
  const SHOW_ACTIVE = '2002-Name       Proto      Table      State  Since         Info\n'
    + '1002-b2         BGP        ---        start  2026-12-01 19:06:37  Active        Socket: Connection refused\n'
    + '1006-  BGP state:          Active\n    Neighbor address: 10.2.0.12\n    Connect delay:    0.233/1\n'
    + '    Last error:       Socket: Connection refused\n0000 \n';

  const read = (text: string) => new ReplyReader().push(text);

  it('splits the stream into replies, whatever the chunks', () => {
    const stream = `0001 BIRD 2.0.12 ready.\n${SHOW_ESTABLISHED}0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n`;
    const whole = read(stream);
    expect(whole.map((r) => [r.code, r.text])).toEqual([[1, 'BIRD 2.0.12 ready.'], [0, ''], [3, 'Reconfigured']]);
    expect(whole[1].lines.slice(0, 4)).toEqual([
      { code: 2002, text: 'Name       Proto      Table      State  Since         Info' },
      { code: 1002, text: 'router1    BGP        ---        up     19:05:38.938  Established   ' },
      { code: 1006, text: '  BGP state:          Established' },
      { code: 1006, text: '    Neighbor address: 10.2.0.1' },
    ]);
    for (const size of [1, 2, 7, 64]) {
      const reader = new ReplyReader();
      const replies = [];
      for (let i = 0; i < stream.length; i += size) replies.push(...reader.push(stream.slice(i, i + size)));
      expect(replies).toEqual(whole);
    }
  });

  it('refuses a line that is not BIRD protocol', () => {
    expect(() => read('HTTP/1.1 400 Bad Request\n')).toThrow("unexpected line from BIRD: 'HTTP/1.1 400 Bad Request'");
    expect(() => read(' continuation without a code\n')).toThrow('unexpected line from BIRD');
  });

  it('tells what configure did, and carries the refusal BIRD gave', () => {
    const outcome = (text: string) => configureOutcome(read(text)[0]);
    expect(outcome('0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n')).toBe('reconfigured');
    expect(outcome('0002-Reading configuration from /etc/bird/bird.conf\n0004 Reconfiguration in progress\n')).toBe('in progress');
    expect(outcome('0005 Reconfiguration already in progress, queueing new config\n')).toBe('queued');
    expect(() => outcome('0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/bird.conf:7:10 syntax error, unexpected CF_SYM_UNDEFINED\n'))
      .toThrow(/^BIRD refused to reconfigure: \/etc\/bird\/bird.conf:7:10 syntax error, unexpected CF_SYM_UNDEFINED$/);
    expect(() => outcome('0006 Reconfiguration ignored, shutting down\n')).toThrow('BIRD refused to reconfigure: Reconfiguration ignored, shutting down');
    expect(() => outcome('0016 Access restricted\n')).toThrow('BIRD refused to reconfigure: Access restricted');
  });

  it('reads a session from `show protocols all`', () => {
    expect(parseProtocol('router1', read(SHOW_ESTABLISHED)[0]))
      .toEqual({ name: 'router1', state: 'up', info: 'Established', since: '19:05:38.938', established: true, neighbor: '10.2.0.1' });
    expect(parseProtocol('b2', read(SHOW_ACTIVE)[0])).toEqual({
      name: 'b2', state: 'start', info: 'Active Socket: Connection refused', since: '2026-12-01 19:06:37', established: false,
      neighbor: '10.2.0.12', lastError: 'Socket: Connection refused',
    });
    expect(parseProtocol('static1', read('2002-Name       Proto      Table      State  Since         Info\n1002-static1    Static     master4    up     19:05:38.134  \n0000 \n')[0]))
      .toEqual({ name: 'static1', state: 'up', info: '', since: '19:05:38.134', established: false });
    expect(parseProtocol('nosuch', read('8003 No protocols match\n')[0])).toEqual({ name: 'nosuch', state: 'missing', info: 'BIRD has no such protocol', established: false });
    expect(parseProtocol('x', read('9001 syntax error, unexpected CF_SYM_UNDEFINED\n')[0])).toEqual({ name: 'x', state: 'unknown', info: 'syntax error, unexpected CF_SYM_UNDEFINED', established: false });
    expect(() => parseProtocol('x', read('0000 \n')[0])).toThrow("unexpected answer from BIRD for protocol x: ''");
  });
});
