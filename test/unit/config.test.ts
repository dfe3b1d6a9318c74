import { describe, expect, it } from 'vitest';
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
        sampler: { enabled: false, slot: 1, settings: {} },
        filter: { enabled: false, slot: 2, settings: {} },
        lb: { enabled: false, slot: 7, settings: {} },
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
    expect(c.sections.filter).toEqual({ enabled: true, slot: 3, settings: {} });
    expect(c.sections.lb).toEqual({ enabled: true, slot: 7, settings: {} });
  });

  it('names the file, line and key of every mistake', () => {
    expect(fails('{\n  "mode": "fast"\n}')).toBe(`${F}:2: mode: expected "native", "skb" or "auto", got "fast"`);
    expect(fails('{\n\n  "interfaces": ["eth0", 7]\n}')).toBe(`${F}:3: interfaces[1]: expected an interface name, got 7`);
    expect(fails('{"interfaces": []}')).toBe(`${F}:1: interfaces: expected "auto" or a non-empty list of interface names, got an array`);
    expect(fails('{"interfaces": "eth0"}')).toBe(`${F}:1: interfaces: expected "auto" or a non-empty list of interface names, got "eth0"`);
    expect(fails('{"interfaces": ["a/b"]}')).toBe(`${F}:1: interfaces[0]: invalid interface name 'a/b': expected 1 to 15 characters without '/', ':' or spaces`);
    expect(fails('{"interfaces": ["eth0", "eth0"]}')).toBe(`${F}:1: interfaces: "eth0" is listed twice`);
    expect(fails('{\n "force": "yes"\n}')).toBe(`${F}:2: force: expected true or false, got "yes"`);
    expect(fails('{"modes": "skb"}')).toBe(`${F}:1: modes: unknown key: expected one of interfaces, mode, force, sampler, filter, lb, metrics`);
    expect(fails('{"filter": {"enable": true}}')).toBe(`${F}:1: filter.enable: unknown key: expected one of enabled, slot`);
    expect(fails('{"filter": true}')).toBe(`${F}:1: filter: expected an object, got true`);
    expect(fails('{"lb": {"slot": 8}}')).toBe(`${F}:1: lb.slot: expected a slot number from 0 to 7, got 8`);
    expect(fails('{"lb": {"slot": 1.5}}')).toBe(`${F}:1: lb.slot: expected a slot number from 0 to 7, got 1.5`);
    expect(fails('{"sampler": {"enabled": 1}}')).toBe(`${F}:1: sampler.enabled: expected true or false, got 1`);
    expect(fails('{"mode": "skb", "mode": "native"}')).toBe(`${F}:1: mode: given twice`);
    expect(fails('{"filter": {"enabled": true}, "sampler": {"enabled": true, "slot": 2}}')).toBe(`${F}:1: filter.slot: slot 2 is already taken by sampler`);
    expect(fails('[1]')).toBe(`${F}:1: (top level): expected an object, got an array`);
  });

  it('hands a section\'s own keys to its reader and places its errors', () => {
    const readers = {
      lb: {
        keys: ['vips'],
        parse(v: Record<string, unknown>) {
          const vips = (v.vips ?? []) as Array<{ port: number }>;
          vips.forEach((vip, i) => {
            if (vip.port > 65535) throw new Error(`vips[${i}].port: expected a port from 1 to 65535, got ${vip.port}`);
          });
          return { vips: vips.length };
        },
      },
    };
    expect(parseConfig('{"lb": {"enabled": true, "vips": [{"port": 80}]}}', F, readers).sections.lb).toEqual({
      enabled: true, slot: 7, settings: { vips: 1 },
    });
    let message = '';
    try {
      parseConfig('{\n "lb": {\n  "vips": [\n   {"port": 80},\n   {"port": 70000}\n  ]\n }\n}', F, readers);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(`${F}:5: lb.vips[1].port: expected a port from 1 to 65535, got 70000`);
    expect(fails('{"lb": {"vipz": []}}')).toBe(`${F}:1: lb.vipz: unknown key: expected one of enabled, slot`);
  });

  it('points at the line of a JSON syntax error', () => {
    expect(fails('{\n  "mode": "skb",\n}')).toBe(`${F}:3: invalid JSON: PropertyNameExpected`);
    expect(fails('')).toBe(`${F}:1: invalid JSON: ValueExpected`);
    expect(fails('{ // comment\n}')).toBe(`${F}:1: invalid JSON: InvalidCommentToken`);
  });
});
