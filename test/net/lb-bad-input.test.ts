// xdp-lb and bad input: one line on stderr naming the value (and, for a
// config file, the key path) and what was expected, exit 2 (or 1 for a
// refused operation), and the kernel state exactly as it was before.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ok, run, xdpRoot } from '../helpers/cli.js';
import { makeLab, nsPinDir, type Lab } from '../helpers/netns.js';
import { ABI_VERSION } from '../../src/version.js';

let lab: Lab;
let dir: string;
const lb = (args: string[]) => run(BIN('xdp-lb'), args, { netns: lab.server });
const state = () =>
  ok(lb(['--status', '--json', '--interface', lab.serverIf])) + ok(xdpRoot(['--status', '--json', '--interface', lab.serverIf], { netns: lab.server }));

const GOOD = {
  nat: { source_ipv4: '10.201.0.2', source_ipv6: 'fd00::10' },
  vips: [{ address: '10.201.0.2', port: 8000, protocol: 'tcp', backends: [{ address: '10.201.0.3' }, { address: '10.201.0.4', weight: 2 }] }],
};

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

beforeAll(() => {
  lab = makeLab();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-lb-bad-'));
  ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns: lab.server }));
  ok(lb(['--attach', '--interface', lab.serverIf]));
  ok(lb(['--apply', file('good.json', GOOD)]));
});
afterAll(() => {
  if (lab) lb(['--detach', '--interface', lab.serverIf]);
  lab?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function rejects(args: () => string[], code: 1 | 2, message: string | RegExp | (() => string | RegExp)) {
  return () => {
    const before = state();
    const r = lb(args());
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(2);
    const m = typeof message === 'function' ? message() : message;
    if (m instanceof RegExp) expect(r.stderr).toMatch(m);
    else expect(r.stderr).toBe(`xdp-lb: ${m}\n`);
    expect(r.code).toBe(code);
    expect(state()).toBe(before);
  };
}

/** A config file's error: at its line and column (checked exactly in the
 *  unit tests), then the key path and what was expected. */
const at = (name: string, rest: string) => () => new RegExp(`^xdp-lb: ${dir}/${name}:\\d+:\\d+: ${rest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n$`);
const vip = (over: Record<string, unknown>) => ({ ...GOOD, vips: [{ ...GOOD.vips[0], ...over }] });
const applying = (name: string, content: unknown) => () => ['--apply', file(name, content)];

describe('xdp-lb rejects a bad config file and changes nothing', () => {
  it('invalid address', rejects(applying('a.json', vip({ address: '10.201.0.256' })), 2,
    at('a.json', 'vips[0].address: expected an IPv4 or IPv6 address, got \'10.201.0.256\'')));
  it('port 0', rejects(applying('b.json', vip({ backends: [{ address: '10.201.0.3' }, { address: '10.201.0.4', port: 0 }] })), 2,
    at('b.json', 'vips[0].backends[1].port: expected a whole number from 1 to 65535, got 0')));
  it('port 65536', rejects(applying('c.json', vip({ port: 65536 })), 2,
    at('c.json', 'vips[0].port: expected a whole number from 1 to 65535, got 65536')));
  it('unknown protocol', rejects(applying('d.json', vip({ protocol: 'icmp' })), 2,
    at('d.json', 'vips[0].protocol: expected "tcp" or "udp", got \'icmp\'')));
  it('duplicate VIP', rejects(applying('e.json', { ...GOOD, vips: [GOOD.vips[0], GOOD.vips[0]] }), 2,
    at('e.json', 'vips[1]: duplicate VIP tcp:10.201.0.2:8000 (also vips[0])')));
  it('VIP without backends', rejects(applying('f.json', vip({ backends: [] })), 2,
    at('f.json', 'vips[0].backends: expected a non-empty list of backends, got []')));
  it('negative weight', rejects(applying('g.json', vip({ backends: [{ address: '10.201.0.3', weight: -2 }] })), 2,
    at('g.json', 'vips[0].backends[0].weight: expected a whole number from 0 to 65535, got -2')));
  it('malformed JSON, with line and column', rejects(applying('h.json', '{\n  "vips": [\n    {"address": "10.201.0.2" "port": 80}\n  ]\n}\n'), 2,
    () => `${dir}/h.json:3:30: invalid JSON: expected ',' between entries`));
  it('address family mix', rejects(applying('i.json', vip({ backends: [{ address: 'fd00::3' }] })), 2,
    at('i.json', 'vips[0].backends[0].address: expected an IPv4 address, got \'fd00::3\'')));
  it('missing file', rejects(() => ['--apply', `${dir}/nope.json`], 2, () => `cannot read config file '${dir}/nope.json': ENOENT`));
});

describe('xdp-lb rejects bad flags and refused operations and changes nothing', () => {
  it('no action', rejects(() => [], 2, /^xdp-lb: nothing to do: expected one of --attach/));
  it('two actions', rejects(() => ['--status', '--detach'], 2, /^xdp-lb: choose one of .*; got --detach and --status\n$/));
  it('bad VIP in an edit', rejects(() => ['--vip-add', 'tcp:10.201.0.2', '--backend', '10.201.0.3'], 2,
    "invalid VIP 'tcp:10.201.0.2': expected PROTOCOL:ADDRESS:PORT like tcp:10.0.0.10:8000 or udp:[fd00::10]:53"));
  it('unknown backend', rejects(() => ['--backend-del', 'tcp:10.201.0.2:8000', '--backend', '10.201.0.9'], 2,
    'no backend 10.201.0.9 port 8000 in VIP tcp:10.201.0.2:8000'));
  it('negative weight in an edit', rejects(() => ['--weight', '-1', '--vip', 'tcp:10.201.0.2:8000', '--backend', '10.201.0.3'], 2,
    "invalid weight '-1': expected a whole number from 0 to 65535"));
  it('VIP of the wrong family for its backends', rejects(() => ['--vip-add', 'tcp:[fd00::10]:80', '--backend', '10.201.0.3'], 2,
    "VIP tcp:[fd00::10]:80.backends[0].address: expected an IPv6 address, got '10.201.0.3'"));
  it('slot 8', rejects(() => ['--attach', '--interface', lab.serverIf, '--slot', '8'], 2, "invalid slot '8': expected a whole number from 0 to 7"));
  it('interface without a root array', rejects(() => ['--attach', '--interface', 'lo'], 1,
    'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('moving to another slot', rejects(() => ['--attach', '--interface', lab.serverIf, '--slot', '3'], 1,
    () => `xdp_lb is already in slot 7 of ${lab.serverIf}, not 3: run xdp-lb --detach --interface ${lab.serverIf} first to move it`));
});

describe('xdp-lb small edits', () => {
  it('apply of the same file writes nothing; edits write only what they change', () => {
    expect(ok(lb(['--apply', file('good.json', GOOD)]))).toBe('Nothing to change: the kernel already holds this config.\n');
    expect(ok(lb(['--weight', '0', '--vip', 'tcp:10.201.0.2:8000', '--backend', '10.201.0.4']))).toBe(
      'Applied: 1 changed, 1 Maglev table(s) swapped, 1 backend entries written.\n',
    );
    const s = JSON.parse(ok(lb(['--status', '--json'])));
    expect(s.vips[0].backends.map((b: { address: string; weight: number }) => [b.address, b.weight])).toEqual([['10.201.0.3', 1], ['10.201.0.4', 0]]);
    ok(lb(['--apply', file('good.json', GOOD)]));
  });
});

describe('xdp-lb and state pinned by another ABI', () => {
  it('refuses it for attach, status and apply with one line saying how to recover, and changes nothing', () => {
    const dirOf = `${nsPinDir(lab.server)}/lb`;
    const marker = `${dirOf}/abi`;
    const original = execFileSync('bpftool', ['-j', 'map', 'lookup', 'pinned', marker, 'key', '0', '0', '0', '0'], { encoding: 'utf8' });
    const value = (JSON.parse(original).value as string[]).map((b) => String(Number(b)));
    const other = [...value];
    other[0] = '1'; // abi 1
    execFileSync('bpftool', ['map', 'update', 'pinned', marker, 'key', '0', '0', '0', '0', 'value', ...other]);
    try {
      const message = `the state pinned in ${dirOf} was made by ABI 1, not ABI ${ABI_VERSION}: run xdp-lb --detach on every interface and ` +
        'xdp-lb --purge (its state goes with it), then attach again';
      const held = () => {
        const s = JSON.parse(ok(xdpRoot(['--status', '--json', '--interface', lab.serverIf], { netns: lab.server })))[lab.serverIf];
        return { pins: readdirSync(dirOf).sort(), slot7: s.subprograms[7]?.id };
      };
      const before = held();
      expect(before.slot7).toBeGreaterThan(0);
      for (const args of [['--status', '--json'], ['--apply', file('abi.json', GOOD)]]) {
        const r = lb(args);
        expect([args[0], r.code, r.stdout, r.stderr]).toEqual([args[0], 1, '', `xdp-lb: ${message}\n`]);
      }
      expect(held()).toEqual(before);
    } finally {
      execFileSync('bpftool', ['map', 'update', 'pinned', marker, 'key', '0', '0', '0', '0', 'value', ...value]);
    }
  });
});
