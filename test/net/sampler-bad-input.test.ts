// xdp-sampler refuses bad input with one line naming the value and what was
// expected, exit 1 or 2, and leaves the kernel as it was: the root's and the
// sampler's status compared before and after, scoped to this lab.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, BPF, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { ifPinDir, makeLab, type Lab } from '../helpers/netns.js';
import { ABI_VERSION } from '../../src/version.js';

let lab: Lab;
let dir: string;
const sampler = (args: string[]) => run(BIN('xdp-sampler'), args, { netns: lab.server });
const state = () =>
  ok(xdpRoot(['--status', '--interface', lab.serverIf, '--json'], { netns: lab.server })) +
  ok(sampler(['--status', '--interface', lab.serverIf, '--json']));

beforeAll(() => {
  lab = makeLab();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-sampler-bad-'));
  ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns: lab.server }));
  ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '100', '--verdict-rate', '10', '--snaplen', '128']));
});
afterAll(() => {
  lab?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function rejects(args: () => string[], code: 1 | 2, message: () => string) {
  return () => {
    const before = state();
    const r = sampler(args());
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`xdp-sampler: ${message()}\n`);
    expect(r.code).toBe(code);
    expect(state()).toBe(before);
  };
}

const attach = (over: string[]) => () => ['--attach', '--interface', lab.serverIf, ...over];
const RATE = (v: string, flag = 'rate') => `invalid ${flag} '${v}': expected a whole number from 0 (off) to 4294967295, sampling 1 in N packets`;
const SNAPLEN = (v: string) => `invalid snaplen '${v}': expected a whole number of bytes from 1 to 65535`;

describe('xdp-sampler rejects bad input and changes nothing', () => {
  it('negative rate', rejects(attach(['--rate', '-5']), 2, () => RATE('-5')));
  it('rate not a number', rejects(attach(['--rate', 'often']), 2, () => RATE('often')));
  it('rate with a fraction', rejects(attach(['--rate', '1.5']), 2, () => RATE('1.5')));
  it('rate too large', rejects(attach(['--rate', '4294967296']), 2, () => RATE('4294967296')));
  it('negative verdict rate', rejects(attach(['--verdict-rate=-1']), 2, () => RATE('-1', 'verdict rate')));
  it('set-rate not a number', rejects(() => ['--set-rate', 'x', '--interface', lab.serverIf], 2, () => RATE('x')));
  it('snaplen 0', rejects(attach(['--snaplen', '0']), 2, () => SNAPLEN('0')));
  it('snaplen above 65535', rejects(attach(['--snaplen', '65536']), 2, () => SNAPLEN('65536')));
  it('slot 8', rejects(attach(['--slot', '8']), 2, () => "invalid slot '8': expected a whole number from 0 to 7"));
  it('unknown interface', rejects(() => ['--attach', '--interface', 'nosuch0'], 1,
    () => "unknown interface 'nosuch0': no such network device in this namespace"));
  it('unknown interface in a list, after a good one', rejects(() => ['--attach', '--interface', `${lab.serverIf},nosuch0`, '--rate', '1'], 1,
    () => "unknown interface 'nosuch0': no such network device in this namespace"));
  it('no root', rejects(() => ['--attach', '--interface', 'lo'], 1,
    () => 'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('capture without a root', rejects(() => ['--capture', '--interface', 'lo', '--output', join(dir, 'lo.pcapng')], 1,
    () => 'Root array not attached to interface lo: run xdp-root --attach --interface lo first'));
  it('unwritable output path', rejects(() => ['--capture', '--interface', lab.serverIf, '--output', '/nonexistent/dir/x.pcapng'], 1,
    () => "cannot write capture file '/nonexistent/dir/x.pcapng': expected a writable file path or - for stdout"));
  it('output is a directory', rejects(() => ['--capture', '--interface', lab.serverIf, '--output', dir], 1,
    () => `cannot write capture file '${dir}': expected a writable file path or - for stdout`));
  it('unknown format', rejects(() => ['--capture', '--interface', lab.serverIf, '--output', '-', '--format', 'json'], 2,
    () => "invalid --format 'json': expected pcapng or pcap"));
  it('count 0', rejects(() => ['--capture', '--interface', lab.serverIf, '--output', '-', '--count', '0'], 2,
    () => "invalid --count '0': expected a whole number of samples from 1"));
  it('negative duration', rejects(() => ['--capture', '--interface', lab.serverIf, '--output', '-', '--duration=-1'], 2,
    () => "invalid --duration '-1': expected a number of seconds above 0"));
  it('capture without --output', rejects(() => ['--capture', '--interface', lab.serverIf], 2,
    () => '--capture needs --output FILE|-'));
  it('a flag of another action', rejects(() => ['--detach', '--interface', lab.serverIf, '--rate', '5'], 2,
    () => '--rate does not go with --detach (see xdp-sampler --help)'));
  it('two actions', rejects(() => ['--attach', '--detach', '--interface', lab.serverIf], 2,
    () => 'choose one of --attach, --detach, --status, --set-rate, --capture; got --attach and --detach'));
  it('no action', rejects(() => ['--interface', lab.serverIf], 2,
    () => 'nothing to do: expected one of --attach, --detach, --status, --set-rate, --capture or run (see xdp-sampler --help)'));
  it('attach without --interface', rejects(() => ['--attach'], 2, () => '--attach needs --interface IFNAME[,IFNAME...]'));
  it('unknown flag', rejects(() => ['--status', '--bogus'], 2, () => 'Unknown argument: bogus (see xdp-sampler --help)'));
  it('moving the sampler to another slot', rejects(attach(['--slot', '4']), 1,
    () => `xdp_sampler is already in slot 1 of ${lab.serverIf}, not 4: run xdp-sampler --detach --interface ${lab.serverIf} first to move it`));

  it('leaves no file behind for a capture that could not start', () => {
    const file = join(dir, 'never.pcapng');
    expect(sampler(['--capture', '--interface', 'lo', '--output', file]).code).toBe(1);
    expect(existsSync(file)).toBe(false);
  });
});

describe('a root pinned by another ABI', () => {
  it('is refused by xdp-root and xdp-sampler alike, saying how to recover, and left untouched', () => {
    const other = makeLab();
    try {
      ok(xdpRoot(['--attach', '--interface', other.serverIf, '--mode', 'native'], { netns: other.server }));
      const dir = ifPinDir(other.server, other.serverIf);
      // The marker as ABI 1 would have written it (ABI 1 is never this one): abi, kind, ifindex, netns inode, name.
      const value = [1, 0, 0, 0, 2, 0, 0, 0, ...Array(24).fill(0)].map(String);
      sh('bpftool', ['map', 'update', 'pinned', `${dir}/abi`, 'key', '0', '0', '0', '0', 'value', ...value]);
      const pins = () => readdirSync(dir).sort().join(',');
      const before = pins();
      const recovery = `the state pinned in ${dir} was made by ABI 1, not ABI ${ABI_VERSION}: run xdp-root --detach --interface ${other.serverIf} and --attach again`;
      for (const [cmd, args] of [['xdp-root', ['--status', '--interface', other.serverIf]], ['xdp-sampler', ['--attach', '--interface', other.serverIf]], ['xdp-root', ['--load', '--interface', other.serverIf, '--slot', '1', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_pass_test']]] as const) {
        const r = run(BIN(cmd), [...args], { netns: other.server });
        expect([r.code, r.stderr]).toEqual([1, `${cmd}: ${recovery}\n`]);
      }
      expect(pins()).toBe(before);
      // The way out it names works.
      ok(xdpRoot(['--detach', '--interface', other.serverIf], { netns: other.server }));
      ok(xdpRoot(['--attach', '--interface', other.serverIf, '--mode', 'native'], { netns: other.server }));
      expect(JSON.parse(ok(xdpRoot(['--status', '--interface', other.serverIf, '--json'], { netns: other.server })))[other.serverIf].root_loaded).toBe(true);
    } finally {
      other.destroy();
    }
  });
});
