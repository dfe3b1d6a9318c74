// xdp-filter refuses bad input with one line naming the value and what was
// expected, exits 1 or 2, and leaves the filter's state exactly as it was.
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT_DIR, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { makeLab, uniqueTag, type Lab } from '../helpers/netns.js';

let lab: Lab;
let bare: string; // an interface with a root array but no filter
const filter = (args: string[]) => run(BIN('xdp-filter'), args, { netns: lab.server });
const status = () => ok(filter(['--status', '--json', '--interface', lab.serverIf]));

beforeAll(() => {
  lab = makeLab();
  const tag = uniqueTag();
  bare = `xb${tag}`;
  sh('ip', ['link', 'add', bare, 'type', 'veth', 'peer', 'name', `xp${tag}`], lab.server);
  ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns: lab.server }));
  ok(xdpRoot(['--attach', '--interface', bare, '--mode', 'skb'], { netns: lab.server }));
  ok(filter(['--attach', '--interface', lab.serverIf, '--frags-drop', '--ptb-max-pps', '20']));
  ok(filter(['--drop', '--interface', lab.serverIf, '--ips', '192.0.2.0/24,2001:db8::/32', '--tags', 'kept']));
});
afterAll(() => {
  if (lab && bare) xdpRoot(['--detach', '--interface', bare], { netns: lab.server });
  lab?.destroy();
});

function rejects(args: () => string[], code: 1 | 2, message: () => string) {
  return () => {
    const before = status();
    const r = filter(args());
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`xdp-filter: ${message()}\n`);
    expect(r.code).toBe(code);
    expect(status()).toBe(before);
  };
}

const dropArgs = (ips: string, extra: string[] = []) => () => ['--drop', '--interface', lab.serverIf, '--ips', ips, ...extra];
const EXPECTED = 'expected an IPv4 or IPv6 address with an optional /length, like 192.0.2.0/24 or 2001:db8::/32';

describe('xdp-filter rejects bad input and changes nothing', () => {
  it('prefix length 33', rejects(dropArgs('10.0.0.0/33'), 2, () => "invalid prefix '10.0.0.0/33': the length must be a whole number from 0 to 32"));
  it('prefix length 129', rejects(dropArgs('::/129'), 2, () => "invalid prefix '::/129': the length must be a whole number from 0 to 128"));
  it('three-part address', rejects(dropArgs('1.2.3'), 2, () => `invalid prefix '1.2.3': ${EXPECTED}`));
  it('empty --ips', rejects(dropArgs(''), 2, () => '--drop needs --ips PREFIX[,PREFIX...]'));
  it('a bad prefix after good ones adds none of them', rejects(dropArgs('198.51.100.0/24,10.1.2.3/8'), 2,
    () => "invalid prefix '10.1.2.3/8': host bits are set: expected 10.0.0.0/8"));
  it('tag too long', rejects(dropArgs('198.51.100.0/24', ['--tags', 't'.repeat(64)]), 2,
    () => `invalid tag '${'t'.repeat(64)}': expected at most 63 bytes of text`));
  it('negative pps', rejects(() => ['--attach', '--interface', lab.serverIf, '--ptb-max-pps', '-5'], 2,
    () => "invalid --ptb-max-pps '-5': expected a whole number from 0 to 4294967295 (0 sends no replies)"));
  it('non-numeric pps', rejects(() => ['--attach', '--interface', lab.serverIf, '--ptb-max-pps', 'lots'], 2,
    () => "invalid --ptb-max-pps 'lots': expected a whole number from 0 to 4294967295 (0 sends no replies)"));
  it('unknown interface', rejects(() => ['--drop', '--interface', 'nosuch0', '--ips', '198.51.100.0/24'], 1,
    () => "unknown interface 'nosuch0': no such network device in this namespace"));
  it('interface without a root array', rejects(() => ['--attach', '--interface', 'lo'], 1,
    () => 'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('a list with one interface lacking a root changes none of them', rejects(
    () => ['--attach', '--interface', `${lab.serverIf},lo`, '--no-frags-drop', '--ptb-max-pps', '1'], 1,
    () => 'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('drop on an interface whose root has no filter', rejects(() => ['--drop', '--interface', `${lab.serverIf},${bare}`, '--ips', '198.51.100.0/24'], 1,
    () => `xdp-filter is not attached to ${bare}: run xdp-filter --attach --interface ${bare} first`));
  it('moving the filter to another slot', rejects(() => ['--attach', '--interface', lab.serverIf, '--slot', '4'], 1,
    () => `xdp_filter is already in slot 2 of ${lab.serverIf}, not 4: run xdp-filter --detach --interface ${lab.serverIf} first to move it`));
  it('a slot another program holds', () => {
    ok(xdpRoot(['--load', '--interface', bare, '--slot', '2', '--object', `${ROOT_DIR}/build/bpf/xdp_fixtures.o`, '--program', 'xdp_pass_test'], { netns: lab.server }));
    const rootStatus = () => ok(xdpRoot(['--status', '--interface', bare, '--json'], { netns: lab.server }));
    const before = rootStatus();
    const id = JSON.parse(before)[bare].subprograms[2].id;
    const r = filter(['--attach', '--interface', bare]);
    expect(r.stderr).toBe(`xdp-filter: slot 2 of ${bare} already holds 'xdp_pass_test' (id ${id}): choose another --slot or empty it with xdp-root --unload\n`);
    expect(r.code).toBe(1);
    expect(rootStatus()).toBe(before);
    ok(xdpRoot(['--unload', '--interface', bare, '--slot', '2'], { netns: lab.server }));
  });
  it('slot out of range', rejects(() => ['--attach', '--interface', lab.serverIf, '--slot', '9'], 2,
    () => "invalid slot '9': expected a whole number from 0 to 7"));
  it('flag that does not go with the action', rejects(() => ['--clear', '--interface', lab.serverIf, '--ips', '1.2.3.4'], 2,
    () => '--ips does not go with --clear (see xdp-filter --help)'));
  it('unknown flag', rejects(() => ['--status', '--bogus'], 2, () => 'Unknown argument: bogus (see xdp-filter --help)'));

  it('the state checked above is the one set up: lists, config and tags intact', () => {
    const s = JSON.parse(status())[lab.serverIf];
    expect(s.configuration).toEqual({ frags_drop: true, ptb_send: true, ptb_max_pps: 20 });
    expect(s.source_drops.map((d: { address: string; tag: string }) => `${d.address} ${d.tag}`)).toEqual(['192.0.2.0 kept', '2001:db8:: kept']);
  });
});

describe('xdp-filter without privileges', () => {
  // A copy of the runtime that any user can read, wherever the checkout is.
  let copy: string;
  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'xdplb-filter-unpriv-'));
    chmodSync(copy, 0o755);
    for (const part of ['bin', 'lib', 'dist', 'package.json', 'node_modules/koffi', 'node_modules/@koromix']) {
      cpSync(join(ROOT_DIR, part), join(copy, part), { recursive: true });
    }
  });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  for (const args of [['--status'], ['--drop', '--ips', '198.51.100.0/24', '--interface', 'LAB']]) {
    it(`a non-root user: ${args[0]} is refused with one line and changes nothing`, () => {
      const before = status();
      const r = run(join(copy, 'bin/xdp-filter'), args.map((a) => (a === 'LAB' ? lab.serverIf : a)), {
        netns: lab.server, prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
      });
      expect(r.stderr).toBe('xdp-filter: needs root privileges: CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF missing (run it as root)\n');
      expect(r.code).toBe(1);
      expect(status()).toBe(before);
    });
  }
});
