// Bad input: a one-line error naming the value and what was expected, exit 1
// or 2, and the kernel state exactly as it was (status compared before/after).
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BPF, ROOT_DIR, ok, run, xdpRoot } from '../helpers/cli.js';
import { makeLab, type Lab } from '../helpers/netns.js';

let lab: Lab;
const root = (args: string[], prefix?: string[]) => xdpRoot(args, { netns: lab.server, prefix });
// The interfaces the bad commands name; scoped so that tests running beside
// this one on the machine cannot change what is compared.
const status = () => ok(root(['--status', '--interface', `${lab.serverIf},lo`, '--json']));

beforeAll(() => {
  lab = makeLab();
  ok(root(['--attach', '--interface', lab.serverIf, '--mode', 'native']));
  ok(root(['--load', '--interface', lab.serverIf, '--slot', '3', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_pass_test']));
});
afterAll(() => lab?.destroy());

function rejects(args: () => string[], code: 1 | 2, message: RegExp | (() => string)) {
  return () => {
    const before = status();
    const r = root(args());
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(2); // one line, then the final newline
    if (message instanceof RegExp) expect(r.stderr).toMatch(message);
    else expect(r.stderr).toBe(`xdp-root: ${message()}\n`);
    expect(r.code).toBe(code);
    expect(status()).toBe(before);
  };
}

const load = (over: Record<string, string>) => () => {
  const a: Record<string, string> = {
    interface: lab.serverIf, slot: '4', object: BPF('xdp_fixtures.o'), program: 'xdp_drop_test', ...over,
  };
  return ['--load', ...Object.entries(a).flatMap(([k, v]) => [`--${k}`, v])];
};

describe('xdp-root rejects bad input and changes nothing', () => {
  it('unknown interface', rejects(() => ['--attach', '--interface', 'nosuch0'], 1,
    () => "unknown interface 'nosuch0': no such network device in this namespace"));
  it('malformed interface name', rejects(() => ['--attach', '--interface', 'a/b'], 2,
    () => "invalid interface name 'a/b': expected 1 to 15 characters without '/', ':' or spaces"));
  it('empty name in a list', rejects(() => ['--attach', '--interface', `${lab.serverIf},`], 2,
    () => `invalid interface list '${lab.serverIf},': expected names separated by commas, like eth0,eth1`));
  it('slot 8', rejects(load({ slot: '8' }), 2, () => "invalid slot '8': expected a whole number from 0 to 7"));
  it('slot -1', rejects(load({ slot: '-1' }), 2, () => "invalid slot '-1': expected a whole number from 0 to 7"));
  it('slot not a number', rejects(load({ slot: 'two' }), 2, () => "invalid slot 'two': expected a whole number from 0 to 7"));
  it('missing object', rejects(load({ object: '/nonexistent/prog.o' }), 1,
    () => "object file '/nonexistent/prog.o' not found: expected a BPF ELF object built with clang -target bpf"));
  it('wrong program name', rejects(load({ program: 'xdp_nope' }), 1,
    () => `no program 'xdp_nope' in ${BPF('xdp_fixtures.o')}: expected one of xdp_pass_test, xdp_drop_test, xdp_bad_action`));
  it('non-conforming program', rejects(load({ object: BPF('xdp_plain.o'), program: 'xdp_plain_drop' }), 1,
    /^xdp-root: program 'xdp_plain_drop' in .* does not use the slot protocol: .* pass --force to load it anyway\n$/));
  it('occupied slot', rejects(load({ slot: '3' }), 1,
    /^xdp-root: slot 3 of \S+ already holds 'xdp_pass_test' \(id \d+\): pass --replace to swap it atomically\n$/));
  it('load without a root', rejects(load({ interface: 'lo' }), 1,
    () => 'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('unload slot 9', rejects(() => ['--unload', '--interface', lab.serverIf, '--slot', '9'], 2,
    () => "invalid slot '9': expected a whole number from 0 to 7"));
  it('bad mode', rejects(() => ['--attach', '--interface', lab.serverIf, '--mode', 'fast'], 2,
    () => "invalid mode 'fast': expected native, skb or auto"));
  it('unknown flag', rejects(() => ['--status', '--bogus'], 2, () => 'Unknown argument: bogus (see xdp-root --help)'));
  it('no action', rejects(() => ['--interface', lab.serverIf], 2,
    () => 'nothing to do: expected one of --attach, --detach, --load, --unload, --status, --clear or run (see xdp-root --help)'));
  it('two actions', rejects(() => ['--attach', '--detach', '--interface', lab.serverIf], 2,
    () => 'choose one of --attach, --detach, --load, --unload, --status, --clear; got --attach and --detach'));
  it('load without --program', rejects(() => ['--load', '--interface', lab.serverIf, '--slot', '4', '--object', BPF('xdp_fixtures.o')], 2,
    () => '--load needs --program NAME'));
  it('stray positional argument', rejects(() => ['--status', 'eth0'], 2,
    () => 'Unknown argument: eth0 (see xdp-root --help)'));
  it('status of an unknown interface', rejects(() => ['--status', '--interface', 'nosuch0'], 1,
    () => "unknown interface 'nosuch0': no such network device in this namespace"));
  it('a flag that does not go with the action', rejects(() => ['--status', '--slot', 'banana'], 2,
    () => '--slot does not go with --status (see xdp-root --help)'));
  it('--replace with --attach', rejects(() => ['--attach', '--replace', '--interface', lab.serverIf], 2,
    () => '--replace does not go with --attach (see xdp-root --help)'));
  it('--load --replace of a program xdplb ships', rejects(() => ['--load', '--replace', '--interface', lab.serverIf, '--slot', '3', '--object', BPF('xdp_filter.o'), '--program', 'xdp_filter'], 1,
    () => `xdp_filter is xdplb's filter: place it with xdp-filter --attach --interface ${lab.serverIf} [--slot N], which keeps its pinned maps (xdp-root --load would give it fresh, empty ones)`));
  it('run given --config twice', rejects(() => ['run', '--config', '/tmp/a.json', '--config', '/tmp/a.json'], 2,
    () => '--config given more than once: expected one value'));
  it('attach changing the mode of an attached root', rejects(() => ['--attach', '--interface', lab.serverIf, '--mode', 'skb'], 1,
    () => `${lab.serverIf} already has the root array attached in native mode, not skb: run xdp-root --detach --interface ${lab.serverIf} first to change mode`));
});

describe('without privileges', () => {
  // A copy of the runtime that any user can read, wherever the checkout is.
  let copy: string;
  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'xdplb-unpriv-'));
    chmodSync(copy, 0o755);
    for (const part of ['bin', 'lib', 'dist', 'package.json', 'node_modules/koffi', 'node_modules/@koromix']) {
      cpSync(join(ROOT_DIR, part), join(copy, part), { recursive: true });
    }
  });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  for (const [who, prefix] of [
    ['a non-root user', ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']],
    ['root without capabilities', ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all']],
  ] as const) {
    for (const args of [['--status'], ['--detach', '--interface', 'LAB']]) {
      it(`${who}: ${args[0]} is refused with one line`, () => {
        const before = status();
        const r = run(join(copy, 'bin/xdp-root'), args.map((a) => (a === 'LAB' ? lab.serverIf : a)), { netns: lab.server, prefix: [...prefix] });
        expect(r.stderr).toBe('xdp-root: needs root privileges: CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF missing (run it as root)\n');
        expect(r.code).toBe(1);
        expect(status()).toBe(before);
      });
    }
  }
});
