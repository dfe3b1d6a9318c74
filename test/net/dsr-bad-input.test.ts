// xdp-decap, and the balancer's direct server return settings, and bad
// input: one line on stderr naming the value and what was expected, exit 2
// (or 1 for a refused operation), and the kernel exactly as it was: the
// decapsulator's, the root's and the balancer's --status --json compared
// before and after.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ok, run, xdpRoot } from '../helpers/cli.js';
import { makeLab, type Lab } from '../helpers/netns.js';

let lab: Lab;
let dir: string;
let held: string;
/** A second interface with a root array and no address at all. */
const BARE = 'xdbare0';
const decap = (args: string[]) => run(BIN('xdp-decap'), args, { netns: lab.server });
const lb = (args: string[]) => run(BIN('xdp-lb'), args, { netns: lab.server });
const state = () => [
  ok(decap(['--status', '--json'])),
  ok(xdpRoot(['--status', '--json'], { netns: lab.server })),
  ok(lb(['--status', '--json'])),
].join('');

const GOOD = {
  encap_source_ipv4: '10.201.0.2',
  vips: [
    { address: '10.201.0.100', port: 80, forwarding: 'dsr-l2', backends: [{ address: '10.201.0.3' }] },
    { address: '10.201.0.101', port: 80, forwarding: 'ipip', backends: [{ address: '10.9.9.9' }] },
  ],
};

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

beforeAll(() => {
  lab = makeLab();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-dsr-bad-'));
  ok(run('ip', ['-n', lab.server, 'link', 'add', BARE, 'type', 'veth', 'peer', 'name', `${BARE}p`]));
  ok(run('ip', ['-n', lab.server, 'link', 'set', BARE, 'up']));
  for (const dev of [lab.serverIf, BARE]) ok(xdpRoot(['--attach', '--interface', dev, '--mode', 'skb'], { netns: lab.server }));
  expect(ok(decap(['--attach', '--interface', lab.serverIf]))).toMatch(
    new RegExp(`^Attached xdp_decap \\(id \\d+\\) to slot 6 of ${lab.serverIf}: tunnel 10\\.201\\.0\\.2, GUE port 6080\\.\\n$`),
  );
  ok(lb(['--attach', '--interface', lab.serverIf]));
  ok(lb(['--apply', file('good.json', GOOD)]));
  // No traffic crosses the lab (static neighbours, no IPv6): the state
  // stays exactly this unless a command changes it.
  held = state();
});
afterAll(() => {
  if (lab) lb(['--detach', '--interface', lab.serverIf]);
  if (lab) lb(['--purge']);
  lab?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function rejects(tool: (args: string[]) => ReturnType<typeof run>, name: string, args: () => string[], code: 1 | 2, message: string | RegExp | (() => string | RegExp)) {
  return () => {
    const r = tool(args());
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(2);
    const m = typeof message === 'function' ? message() : message;
    if (m instanceof RegExp) expect(r.stderr).toMatch(m);
    else expect(r.stderr).toBe(`${name}: ${m}\n`);
    expect(r.code).toBe(code);
    expect(state()).toBe(held);
  };
}
const decapRejects = (args: () => string[], code: 1 | 2, message: string | RegExp | (() => string | RegExp)) => rejects(decap, 'xdp-decap', args, code, message);
const lbRejects = (args: () => string[], code: 1 | 2, message: string | RegExp | (() => string | RegExp)) => rejects(lb, 'xdp-lb', args, code, message);
const attach = (...extra: string[]) => () => ['--attach', '--interface', lab.serverIf, ...extra];

describe('xdp-decap rejects bad input and changes nothing', () => {
  it('a GUE port out of range', decapRejects(attach('--gue-port', '70000'), 2, "invalid --gue-port '70000': expected a UDP port from 1 to 65535, or 0 for no GUE"));
  it('a GUE port that is no number', decapRejects(attach('--gue-port', 'gue'), 2, "invalid --gue-port 'gue': expected a UDP port from 1 to 65535, or 0 for no GUE"));
  it('an IPv6 address as the IPv4 tunnel', decapRejects(attach('--tunnel-ipv4', 'fd00::1'), 2, "invalid --tunnel-ipv4 'fd00::1': expected a unicast IPv4 address of this host, or none"));
  it('a multicast tunnel address', decapRejects(attach('--tunnel-ipv4', '224.0.0.1'), 2, "invalid --tunnel-ipv4 '224.0.0.1': expected a unicast IPv4 address of this host, or none"));
  it('an IPv4 address as the IPv6 tunnel', decapRejects(attach('--tunnel-ipv6', '10.201.0.2'), 2, "invalid --tunnel-ipv6 '10.201.0.2': expected a unicast IPv6 address of this host, or none"));
  it('the unspecified IPv6 address', decapRejects(attach('--tunnel-ipv6', '::'), 2, "invalid --tunnel-ipv6 '::': expected a unicast IPv6 address of this host, or none"));
  it('slot 8', decapRejects(attach('--slot', '8'), 2, "invalid slot '8': expected a whole number from 0 to 7"));
  it('a tunnel option with --status', decapRejects(() => ['--status', '--gue-port', '6080'], 2, '--gue-port does not go with --status (see xdp-decap --help)'));
  it('an unknown interface', decapRejects(() => ['--attach', '--interface', 'nosuch0'], 1, "unknown interface 'nosuch0': no such network device in this namespace"));
  it('an interface without a root array', decapRejects(() => ['--attach', '--interface', 'lo'], 1, 'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('moving it to another slot', decapRejects(attach('--slot', '3'), 1,
    () => `xdp_decap is already in slot 6 of ${lab.serverIf}, not 3: run xdp-decap --detach --interface ${lab.serverIf} first to move it`));
  it('an interface with no address of its own and no tunnel given (the program placed first is taken out again)', decapRejects(() => ['--attach', '--interface', BARE], 1,
    `${BARE} has no address to take tunnel packets on (no IPv4 address, no global IPv6 address): give --tunnel-ipv4 or --tunnel-ipv6`));
  it('the status of an interface it does not run on', decapRejects(() => ['--status', '--interface', BARE], 1,
    `xdp-decap is not attached to ${BARE}: run xdp-decap --attach --interface ${BARE} first`));
  it('--check without --vip', decapRejects(() => ['--check'], 2, '--check needs --vip ADDR[,ADDR...]'));
  it('--check with a bad VIP', decapRejects(() => ['--check', '--vip', '10.201.0.100,10.201.0.300'], 2,
    "invalid --vip '10.201.0.100,10.201.0.300': expected addresses separated by commas, like 10.0.0.10,fd00::10"));
  it('--check of NAT', decapRejects(() => ['--check', '--vip', '10.201.0.100', '--forwarding', 'nat'], 2,
    "invalid --forwarding 'nat': expected dsr-l2, ipip or gue (a NAT backend needs none of this)"));
  it('--check on an unknown interface', decapRejects(() => ['--check', '--vip', '10.201.0.100', '--interface', 'nosuch0'], 1,
    "unknown interface 'nosuch0': no such network device in this namespace"));
});

describe('xdp-decap --attach again changes only what it is given, in place', () => {
  it('keeps the program and counters; an explicit address replaces the default', () => {
    const before = JSON.parse(ok(decap(['--status', '--json'])))[lab.serverIf];
    expect(ok(decap(['--attach', '--interface', lab.serverIf, '--gue-port', '0', '--tunnel-ipv4', '10.201.0.7']))).toBe(
      `xdp_decap already in slot 6 of ${lab.serverIf}: tunnel 10.201.0.7, GUE off.\n`,
    );
    const after = JSON.parse(ok(decap(['--status', '--json'])))[lab.serverIf];
    expect(after).toEqual({ ...before, configuration: { tunnel_ipv4: '10.201.0.7', tunnel_ipv6: null, gue_port: 0 } });
    ok(decap(['--attach', '--interface', lab.serverIf, '--gue-port', '6080', '--tunnel-ipv4', '10.201.0.2']));
    expect(JSON.parse(ok(decap(['--status', '--json'])))[lab.serverIf]).toEqual(before);
  });
});

describe('xdp-lb refuses direct server return it cannot give, and changes nothing', () => {
  const off = { ...GOOD, vips: [GOOD.vips[0], { ...GOOD.vips[0], address: '10.201.0.102', backends: [{ address: '10.201.0.3' }, { address: '10.9.9.9' }] }] };
  it('a dsr-l2 backend off every connected subnet, in a file (with its line and column)', lbRejects(() => ['--apply', file('far.json', off)], 2,
    () => new RegExp(`^xdp-lb: ${dir}/far\\.json:\\d+:\\d+: vips\\[1\\]\\.backends\\[1\\]\\.address: forwarding "dsr-l2" only changes the destination MAC, so a backend must be on a subnet this network namespace reaches without a router \\(10\\.201\\.0\\.0/24\\), got '10\\.9\\.9\\.9' \\(give its "mac" if it is a neighbour all the same\\)\\n$`)));
  it('and added by an edit', lbRejects(() => ['--backend-add', 'tcp:10.201.0.100:80', '--backend', '10.9.9.8'], 2,
    'vips[0].backends[1].address: forwarding "dsr-l2" only changes the destination MAC, so a backend must be on a subnet this network namespace reaches without a router (10.201.0.0/24), got \'10.9.9.8\' (give its "mac" if it is a neighbour all the same)'));
  it('a DSR backend on another port than its VIP\'s', lbRejects(() => ['--apply', file('port.json', { ...GOOD, vips: [{ ...GOOD.vips[1], backends: [{ address: '10.9.9.9', port: 8080 }] }] })], 2,
    () => new RegExp(`^xdp-lb: ${dir}/port\\.json:\\d+:\\d+: vips\\[0\\]\\.backends\\[0\\]\\.port: forwarding "ipip" hands the backend the client's packet unchanged, to the VIP's port: expected 80 \\(or no port\\), got 8080\\n$`)));
  it('but takes a dsr-l2 backend given by MAC', () => {
    const withMac = { ...off, vips: [off.vips[0], { ...off.vips[1], backends: [{ address: '10.201.0.3' }, { address: '10.9.9.9', mac: '02:00:00:00:09:09' }] }] };
    expect(ok(lb(['--apply', file('mac.json', withMac)]))).toBe('Applied: 1 VIP(s) added, 1 removed, 1 Maglev table(s) swapped, 2 backend entries written.\n');
    ok(lb(['--apply', file('good.json', GOOD)]));
  });
});

describe('xdp-lb --status', () => {
  it('shows each VIP\'s forwarding, its outer source, and the DSR counters', () => {
    const text = ok(lb(['--status']));
    expect(text).toMatch(/│ tcp:10\.201\.0\.100:80 +│ dsr-l2, table 65537 +│/);
    expect(text).toMatch(/│ tcp:10\.201\.0\.101:80 +│ ipip, table 65537 +│/);
    for (const h of ['BAD CHECKSUM', 'ENCAPSULATED', 'TOO BIG', 'ICMP FORWARDED']) expect(text).toContain(h);
    expect(text.trimEnd().split('\n').at(-1)).toBe('tcp:10.201.0.101:80: ipip, outer source 10.201.0.2');
    const json = JSON.parse(ok(lb(['--status', '--json'])));
    expect(json.vips.map((v: Record<string, unknown>) => [v.forwarding, v.encap_source_ipv4 ?? null])).toEqual([['dsr-l2', null], ['ipip', '10.201.0.2']]);
    expect(Object.keys(json.vips[1].counters)).toEqual(expect.arrayContaining(['bad_checksum', 'encapsulated', 'too_big', 'icmp_forwarded']));
  });
});
