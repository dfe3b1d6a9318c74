import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ROOT_DIR } from '../helpers/cli.js';
import { ConfigError, parseConfig } from '../../src/service/config.js';

const F = '/etc/xdplb/xdplb.json';
const fails = (text: string) => {
  try {
    parseConfig(text, F);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('config was accepted');
};

describe('service config', () => {
  it('fills defaults', () => {
    expect(parseConfig('{}', F)).toEqual({
      interfaces: 'auto', mode: 'auto', force: false,
      sections: {
        sampler: { enabled: false, slot: 1, settings: { rate: 1000, verdictRate: 0, snaplen: 256 } },
        filter: { enabled: false, slot: 2, settings: { frags_drop: false, ptb_max_pps: 0, drop: [] } },
        decap: { enabled: false, slot: 6, settings: { tunnels: {}, gue_port: 6080 } },
        lb: { enabled: false, slot: 7, settings: expect.objectContaining({ vips: [] }) },
      },
    });
  });

  it('reads every key', () => {
    const c = parseConfig(JSON.stringify({
      interfaces: ['eth0', 'eth1'], mode: 'native', force: true,
      filter: { enabled: true, slot: 3 }, lb: { enabled: true }, sampler: { enabled: false, slot: 3 },
    }), F);
    expect(c.interfaces).toEqual(['eth0', 'eth1']);
    expect(c.mode).toBe('native');
    expect(c.force).toBe(true);
    expect(c.sections.filter).toMatchObject({ enabled: true, slot: 3 });
    expect(c.sections.lb).toMatchObject({ enabled: true, slot: 7 });
  });

  it('names the file, line, column and key of every mistake', () => {
    expect(fails('{\n  "mode": "fast"\n}')).toBe(`${F}:2:11: mode: expected "native", "skb" or "auto", got "fast"`);
    expect(fails('{\n\n  "interfaces": ["eth0", 7]\n}')).toBe(`${F}:3:26: interfaces[1]: expected an interface name, got 7`);
    expect(fails('{"interfaces": []}')).toBe(`${F}:1:16: interfaces: expected "auto" or a non-empty list of interface names, got an array`);
    expect(fails('{"interfaces": "eth0"}')).toBe(`${F}:1:16: interfaces: expected "auto" or a non-empty list of interface names, got "eth0"`);
    expect(fails('{"interfaces": ["a/b"]}')).toBe(`${F}:1:17: interfaces[0]: invalid interface name 'a/b': expected 1 to 15 characters without '/', ':' or spaces`);
    expect(fails('{"interfaces": ["eth0", "eth0"]}')).toBe(`${F}:1:16: interfaces: "eth0" is listed twice`);
    expect(fails('{\n "force": "yes"\n}')).toBe(`${F}:2:11: force: expected true or false, got "yes"`);
    expect(fails('{"modes": "skb"}')).toBe(`${F}:1:2: modes: unknown key: expected one of interfaces, mode, force, metrics, sampler, filter, decap, lb`);
    expect(fails('{"filter": {"enable": true}}')).toBe(`${F}:1:13: filter.enable: unknown key: expected one of enabled, slot, frags_drop, ptb_max_pps, drop`);
    expect(fails('{"filter": true}')).toBe(`${F}:1:12: filter: expected an object, got true`);
    expect(fails('{"lb": {"slot": 8}}')).toBe(`${F}:1:17: lb.slot: expected a slot number from 0 to 7, got 8`);
    expect(fails('{"lb": {"slot": 1.5}}')).toBe(`${F}:1:17: lb.slot: expected a slot number from 0 to 7, got 1.5`);
    expect(fails('{"sampler": {"enabled": 1}}')).toBe(`${F}:1:25: sampler.enabled: expected true or false, got 1`);
    expect(fails('{"mode": "skb", "mode": "native"}')).toBe(`${F}:1:17: mode: given twice`);
    expect(fails('{"lb": {"vips": [], "vips": []}}')).toBe(`${F}:1:21: lb.vips: given twice`);
    expect(fails('{"filter": {"enabled": true}, "sampler": {"enabled": true, "slot": 2}}')).toBe(`${F}:1:12: filter.slot: slot 2 is already taken by sampler`);
    expect(fails('[1]')).toBe(`${F}:1:1: (top level): expected an object, got an array`);
  });

  it('hands a section\'s own keys to its program and places its errors', () => {
    const vip = '{"address": "10.0.0.10", "port": 80, "protocol": "tcp", "backends": [{"address": "10.0.0.2"}]}';
    const nat = '"nat": {"source_ipv4": "10.0.0.10"}';
    expect((parseConfig(`{"lb": {"enabled": true, ${nat}, "vips": [${vip}]}}`, F).sections.lb.settings as { vips: unknown[] }).vips).toHaveLength(1);
    expect(fails(`{\n "lb": {\n  ${nat},\n  "vips": [\n   ${vip},\n   {"address": "10.0.0.11", "port": 70000, "protocol": "tcp", "backends": []}\n  ]\n }\n}`))
      .toBe(`${F}:6:37: lb.vips[1].port: expected a whole number from 1 to 65535, got 70000`);
    expect(fails('{"lb": {"vipz": []}}')).toBe(`${F}:1:9: lb.vipz: unknown key: expected one of enabled, slot, nat, timeouts, vips, forwarding, encap_source_ipv4, encap_source_ipv6, gue_port, stateless, chain_window_s, bgp`);
  });

  it('reads the balancer\'s bgp part apart from its VIPs, and places its errors', () => {
    const section = (bgp: string) => `{"lb": {"enabled": true, "vips": [],\n "bgp": ${bgp}}}`;
    const lb = parseConfig(section('{"peers": ["router1"], "withdraw_wait_ms": 500}'), F).sections.lb.settings;
    expect(lb).toEqual({
      nat: { port_min: 1024, port_max: 32767 }, timeouts: { tcp_idle_s: 300, udp_idle_s: 60, time_wait_s: 60 }, vips: [],
      bgp: { socket: '/run/bird/bird.ctl', includeFile: '/run/bird/xdplb-vips.conf', protocol: 'xdplb_vips', peers: ['router1'], withdrawWaitMs: 500 },
    });
    expect(parseConfig('{"lb": {"enabled": true, "vips": []}}', F).sections.lb.settings).not.toHaveProperty('bgp');
    expect(fails(section('{"peers": ["router1", "1x"]}'))).toBe(`${F}:2:31: lb.bgp.peers[1]: expected a BIRD protocol name (a letter or _, then letters, digits or _, at most 62), got '1x'`);
    expect(fails(section('{"withdraw_wait_ms": -1}'))).toBe(`${F}:2:30: lb.bgp.withdraw_wait_ms: expected a whole number of ms from 0 to 60000, got -1`);
  });

  it('explains a JSON syntax error in words, at its line and column', () => {
    expect(fails('{\n  "mode": "skb",\n}')).toBe(`${F}:3:1: invalid JSON: expected a key in double quotes`);
    expect(fails('')).toBe(`${F}:1:1: invalid JSON: the file is empty`);
    expect(fails('{ // comment\n}')).toBe(`${F}:1:3: invalid JSON: comments are not allowed in JSON`);
    expect(fails('{"mode": "skb"')).toBe(`${F}:1:15: invalid JSON: expected '}'`);
  });

  it('reads past a UTF-8 byte-order mark without shifting lines or columns', () => {
    expect(parseConfig('\ufeff{"mode": "skb"}', F).mode).toBe('skb');
    expect(fails('\ufeff{\n  "mode": "fast"\n}')).toBe(`${F}:2:11: mode: expected "native", "skb" or "auto", got "fast"`);
  });
});

describe('the shipped fleet balancer example', () => {
  it('is a config the service accepts, announcing through the example BIRD config\'s names', () => {
    const text = readFileSync(`${ROOT_DIR}/etc/xdplb-balancer.json`, 'utf8');
    const lb = parseConfig(text, 'xdplb-balancer.json').sections.lb;
    expect(lb.enabled).toBe(true);
    const settings = lb.settings as { bgp: { protocol: string; peers: string[]; includeFile: string }; vips: Array<{ backends: Array<{ health?: object }> }> };
    const bird = readFileSync(`${ROOT_DIR}/etc/bird/xdplb-balancer.conf`, 'utf8');
    for (const p of settings.bgp.peers) expect(bird).toMatch(new RegExp(`^protocol bgp ${p} \\{`, 'm'));
    expect(bird).toContain(`if proto = "${settings.bgp.protocol}4" || proto = "${settings.bgp.protocol}6" then accept;`);
    expect(bird).toContain(`include "${settings.bgp.includeFile.replace(/[^/]*$/, '')}xdplb-*.conf";`);
    expect(settings.vips[0].backends.every((b) => b.health)).toBe(true);
  });
});
