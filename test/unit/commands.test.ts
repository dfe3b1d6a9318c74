// The command table every tool is made from (src/command.ts, src/cli/tool.ts):
// each tool's actions parsed into the requests they run, and every call
// checked the same way: exactly one action, flags that do not belong to it
// refused, what it needs there, values given once. No privileges needed.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import type { ToolSpec } from '../../src/command.js';
import { UsageError } from '../../src/errors.js';
import { ROOT_TOOL } from '../../src/cli/root.js';
import { subprogramTool } from '../../src/cli/subprogram.js';
import { parser, select } from '../../src/cli/tool.js';
import { SUBPROGRAMS, subprogram } from '../../src/programs/index.js';
import { BIN } from '../helpers/cli.js';
import { ABI_VERSION, VERSION } from '../../src/version.js';

const FILTER = subprogramTool(subprogram('filter'));
const SAMPLER = subprogramTool(subprogram('sampler'));
const LB = subprogramTool(subprogram('lb'));
const TOOLS: ToolSpec[] = [ROOT_TOOL, ...SUBPROGRAMS.map(subprogramTool)];

async function call(spec: ToolSpec, ...args: string[]): Promise<{ action: string; request: unknown }> {
  const argv = await parser(spec, args).parse();
  const { action, args: checked } = select(spec, argv as never);
  return { action: action.name, request: action.parse(checked) };
}

describe('every tool', () => {
  for (const spec of TOOLS) {
    it(`${spec.name}: one action per call, foreign flags refused, usage errors exit 2`, async () => {
      await expect(call(spec)).rejects.toThrow(new RegExp(`^nothing to do: expected one of --attach.* \\(see ${spec.name} --help\\)$`));
      await expect(call(spec, '--attach', '--detach', '-i', 'eth0')).rejects.toThrow(/^choose one of .*; got --attach and --detach$/);
      await expect(call(spec, '--status', '--frobnicate')).rejects.toThrow(`Unknown argument: frobnicate (see ${spec.name} --help)`);
      await expect(call(spec, '--attach')).rejects.toThrow('--attach needs --interface IFNAME[,IFNAME...]');
      await expect(call(spec, '--status', '--config', '/tmp/x.json')).rejects.toThrow(`--config does not go with --status (see ${spec.name} --help)`);
      await expect(call(spec, '--detach', '-i', 'eth0', '--slot', '3')).rejects.toThrow(`--slot does not go with --detach (see ${spec.name} --help)`);
      await expect(call(spec, 'run', '--attach')).rejects.toThrow('run takes no --attach: it reads what to do from --config');
      await expect(call(spec, 'run', 'again')).rejects.toThrow(`Unknown argument: again (see ${spec.name} --help)`);
      await expect(call(spec, 'run', '--config', 'a', '--config', 'b')).rejects.toThrow('--config given more than once: expected one value');
      await expect(call(spec, '--status', '--interval', '2')).rejects.toThrow('--interval goes with --watch');
      await expect(call(spec, '--status', '--watch', '--interval', '0')).rejects.toThrow("invalid --interval '0': expected seconds from 0.1 to 3600");
      await expect(call(spec, '--attach')).rejects.toBeInstanceOf(UsageError);
      expect(await call(spec, 'run', '--config', '/tmp/x.json')).toMatchObject({ action: 'run', request: { config: '/tmp/x.json' } });
      expect(await call(spec, '--status', '--watch', '--interval', '0.5', '-i', 'eth0')).toEqual({
        action: 'status', request: expect.objectContaining({ ifaces: ['eth0'], watch: true, intervalMs: 500 }),
      });
    });

    it(`${spec.name} --version prints the version and the ABI`, () => {
      const r = spawnSync(BIN(spec.name), ['--version'], { encoding: 'utf8' });
      expect([r.status, r.stdout]).toEqual([0, `${spec.name} ${VERSION} (ABI ${ABI_VERSION})\n`]);
    });
  }
});

describe('xdp-root', () => {
  it('parses each action', async () => {
    expect(await call(ROOT_TOOL, '--attach', '-i', 'eth0,eth1')).toEqual({ action: 'attach', request: { ifaces: ['eth0', 'eth1'], mode: 'auto', force: false } });
    expect(await call(ROOT_TOOL, '--attach', '-i', 'eth0', '--mode', 'skb')).toMatchObject({ request: { mode: 'skb' } });
    expect(await call(ROOT_TOOL, '--detach', '--interface', 'eth0')).toEqual({ action: 'detach', request: { ifaces: ['eth0'] } });
    expect(await call(ROOT_TOOL, '--load', '-i', 'eth0', '-s', '3', '-o', 'x.o', '-p', 'prog')).toEqual({
      action: 'load', request: { ifname: 'eth0', slot: 3, object: 'x.o', program: 'prog', replace: false, force: false },
    });
    expect(await call(ROOT_TOOL, '--unload', '-i', 'eth0', '--slot', '0')).toEqual({ action: 'unload', request: { ifname: 'eth0', slot: 0 } });
    expect(await call(ROOT_TOOL, '--status')).toEqual({ action: 'status', request: { ifaces: undefined, watch: false, intervalMs: 1000, clear: false } });
    expect(await call(ROOT_TOOL, '--status', '--clear', '-i', 'eth0')).toMatchObject({ action: 'status', request: { ifaces: ['eth0'], clear: true } });
    expect(await call(ROOT_TOOL, '--clear')).toEqual({ action: 'clear', request: { ifaces: undefined } });
    expect(await call(ROOT_TOOL, 'run')).toEqual({ action: 'run', request: { config: '/etc/xdplb/xdplb.json', dryRun: false } });
    expect(await call(ROOT_TOOL, 'run', '--config', '/tmp/x.json', '--dry-run')).toEqual({ action: 'run', request: { config: '/tmp/x.json', dryRun: true } });
  });

  it('refuses what does not belong, and what it cannot do', async () => {
    const cases: Array<[string[], string]> = [
      [['--status', '--slot', 'banana'], '--slot does not go with --status (see xdp-root --help)'],
      [['--attach', '--replace', '-i', 'eth0'], '--replace does not go with --attach (see xdp-root --help)'],
      [['--load', '-i', 'eth0', '-s', '1', '-o', 'x.o'], '--load needs --program NAME'],
      [['--load', '-i', 'eth0,eth1', '-s', '1', '-o', 'x.o', '-p', 'p'], "--load takes one interface, got 'eth0,eth1'"],
      [['--unload', '-i', 'eth0', '-s', '8'], "invalid slot '8': expected a whole number from 0 to 7"],
      [['--load', '-i', 'eth0', '-s', '1', '-s', '2', '-o', 'x.o', '-p', 'p'], '--slot given more than once: expected one value'],
      [['--attach', '-i', 'eth0', '--mode', 'drv'], "invalid mode 'drv': expected native, skb or auto"],
    ];
    for (const [args, message] of cases) await expect(call(ROOT_TOOL, ...args)).rejects.toThrow(new UsageError(message));
  });

  it('refuses to --load a program xdplb ships, pointing at its own tool, before anything is done', async () => {
    const argv = await parser(ROOT_TOOL, ['--load', '--replace', '-i', 'eth0', '-s', '2', '-o', '/usr/lib/xdplb/bpf/xdp_filter.o', '-p', 'xdp_filter']).parse();
    const { action, args } = select(ROOT_TOOL, argv as never);
    const ctx = { json: false, command: 'xdp-root', print: () => {}, warn: () => {} };
    await expect(Promise.resolve().then(() => action.run(action.parse(args), ctx))).rejects.toThrow(
      "xdp_filter is xdplb's filter: place it with xdp-filter --attach --interface eth0 [--slot N], which keeps its pinned maps (xdp-root --load would give it fresh, empty ones)",
    );
  });
});

describe('xdp-filter', () => {
  it('parses attach with each config flag, and only those given', async () => {
    expect(await call(FILTER, '--attach', '-i', 'eth0,eth1')).toEqual({ action: 'attach', request: { ifaces: ['eth0', 'eth1'], slot: undefined, extra: {} } });
    expect(await call(FILTER, '--attach', '-i', 'eth0', '--slot', '4', '--frags-drop', '--ptb-max-pps', '20')).toEqual({
      action: 'attach', request: { ifaces: ['eth0'], slot: 4, extra: { frags_drop: true, ptb_max_pps: 20 } },
    });
    expect(await call(FILTER, '--attach', '-i', 'eth0', '--no-frags-drop')).toMatchObject({ request: { extra: { frags_drop: false } } });
  });
  it('parses drop lists and pairs tags', async () => {
    expect(await call(FILTER, '--drop', '--ips', '192.0.2.0/24,2001:db8::/32', '--tags', 'scanner', '-i', 'eth0')).toMatchObject({ action: 'drop', request: { ifaces: ['eth0'], tags: ['scanner', 'scanner'] } });
    expect(await call(FILTER, '--drop', '--ips', '10.0.0.1,10.0.0.2', '--tags', 'a,b', '-i', 'eth0')).toMatchObject({ request: { tags: ['a', 'b'] } });
    expect(await call(FILTER, '--drop', '--ips', '10.0.0.1', '-i', 'eth0')).toMatchObject({ request: { tags: [''] } });
    expect(await call(FILTER, '--drop', '--ips', '10.0.0.1', '--tags', 'scanner, ticket 42', '-i', 'eth0')).toMatchObject({ request: { tags: ['scanner, ticket 42'] } });
    expect(await call(FILTER, '--drop', '--ips', '10.0.0.1,10.0.0.2', '--tags', 'a\\, b,c', '-i', 'eth0')).toMatchObject({ request: { tags: ['a, b', 'c'] } });
    expect(await call(FILTER, '--drop', '--ips', '10.0.0.1,10.0.0.2', '--tags', 'x\\,y', '-i', 'eth0')).toMatchObject({ request: { tags: ['x,y', 'x,y'] } });
    expect(await call(FILTER, '--no-drop', '--ips', '10.0.0.1', '-i', 'eth0')).toMatchObject({ action: 'no-drop' });
  });
  it('refuses bad combinations with one clear line', async () => {
    const cases: Array<[string[], string]> = [
      [['--drop', '--no-drop', '-i', 'e'], 'choose one of --attach, --detach, --status, --drop, --no-drop, --clear, --clear-status; got --drop and --no-drop'],
      [['--drop', '-i', 'eth0'], '--drop needs --ips PREFIX[,PREFIX...]'],
      [['--clear'], '--clear needs --interface IFNAME[,IFNAME...]'],
      [['--attach', '-i', 'eth0', '--ips', '1.2.3.4'], '--ips does not go with --attach (see xdp-filter --help)'],
      [['--no-drop', '-i', 'eth0', '--ips', '1.2.3.4', '--tags', 'x'], '--tags does not go with --no-drop (see xdp-filter --help)'],
      [['--attach', '-i', 'eth0', '--frags-drop', '--no-frags-drop'], 'choose one of --frags-drop and --no-frags-drop'],
      [['--attach', '-i', 'eth0', '--slot', '8'], "invalid slot '8': expected a whole number from 0 to 7"],
      [['--drop', '-i', 'eth0', '--ips', '10.0.0.1,10.0.0.2,10.0.0.3', '--tags', 'a,b'], '--tags has 2 tags for 3 prefixes: expected one tag, or one per prefix'],
      [['--drop', '-i', 'eth0', '--ips', '10.0.0.1,'], "invalid prefix list '10.0.0.1,': expected prefixes separated by commas, like 192.0.2.0/24,2001:db8::/32"],
    ];
    for (const [args, message] of cases) await expect(call(FILTER, ...args)).rejects.toThrow(new UsageError(message));
  });
});

describe('xdp-sampler', () => {
  it('parses each action with its defaults', async () => {
    expect(await call(SAMPLER, '--attach', '-i', 'eth0')).toEqual({
      action: 'attach', request: { ifaces: ['eth0'], slot: undefined, extra: { rate: undefined, verdictRate: undefined, snaplen: undefined } },
    });
    expect(await call(SAMPLER, '--attach', '-i', 'eth0,eth1', '--slot', '3', '--rate', '10', '--verdict-rate', '0', '--snaplen', '64')).toEqual({
      action: 'attach', request: { ifaces: ['eth0', 'eth1'], slot: 3, extra: { rate: 10, verdictRate: 0, snaplen: 64 } },
    });
    expect(await call(SAMPLER, '--set-rate', '0', '-i', 'eth0')).toEqual({
      action: 'set-rate', request: { ifaces: ['eth0'], settings: { rate: 0, verdictRate: undefined, snaplen: undefined } },
    });
    expect(await call(SAMPLER, '--capture', '-i', 'eth0', '-o', 'x.pcapng')).toEqual({
      action: 'capture', request: { ifaces: ['eth0'], format: 'pcapng', output: 'x.pcapng', count: undefined, durationMs: undefined },
    });
  });
  it('takes - as stdout after --output and -o, and the format from the file name', async () => {
    for (const args of [['--output', '-'], ['-o', '-'], ['--output=-']]) {
      expect(await call(SAMPLER, '--capture', '-i', 'eth0', ...args, '--format', 'pcap', '--count', '5', '--duration', '1.5')).toMatchObject({
        request: { output: '-', format: 'pcap', count: 5, durationMs: 1500 },
      });
    }
    expect(await call(SAMPLER, '--capture', '-i', 'eth0', '-o', 'x.pcap')).toMatchObject({ request: { format: 'pcap' } });
    expect(await call(SAMPLER, '--capture', '-i', 'eth0', '-o', 'x.cap')).toMatchObject({ request: { format: 'pcapng' } });
    await expect(call(SAMPLER, '--capture', '-i', 'eth0', '-o', 'x.pcap', '--format', 'pcapng')).rejects.toThrow(
      "--output 'x.pcap' names a pcap file but --format is pcapng: rename it or drop --format",
    );
  });
  it('refuses flags of another action', async () => {
    await expect(call(SAMPLER, '--status', '--rate', '5')).rejects.toThrow(new UsageError('--rate does not go with --status (see xdp-sampler --help)'));
    await expect(call(SAMPLER, '--capture', '-i', 'eth0', '-o', '-', '--snaplen', '5')).rejects.toThrow('--snaplen does not go with --capture');
  });
});

describe('xdp-lb', () => {
  it('parses the small edits, --weight as an option of --vip-add and as an action alone', async () => {
    expect(await call(LB, '--vip-add', 'tcp:10.0.0.10:8000', '--backend', '10.0.0.2,10.0.0.3', '--weight', '2')).toMatchObject({
      action: 'vip-add', request: { kind: 'vip-add', weight: 2, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }] },
    });
    expect(await call(LB, '--weight', '0', '--vip', 'tcp:10.0.0.10:8000', '--backend', '10.0.0.4')).toMatchObject({
      action: 'weight', request: { kind: 'weight', weight: 0 },
    });
    expect(await call(LB, '--purge')).toEqual({ action: 'purge', request: null });
  });
  it('refuses what is ambiguous or misplaced', async () => {
    const cases: Array<[string[], string]> = [
      [['--attach', '--interface', 'x', '--weight', '3'], 'choose one of --attach, --detach, --status, --apply, --vip-add, --vip-del, --backend-add, --backend-del, --weight, --purge; got --attach and --weight'],
      [['--vip-add', '10.0.0.1:80', '--backend', '10.0.0.2'], "invalid VIP '10.0.0.1:80': expected PROTOCOL:ADDRESS:PORT like tcp:10.0.0.10:8000 or udp:[fd00::10]:53"],
      [['--vip-add', 'tcp:10.0.0.1:80', '--backend', '10.0.0.2,10.0.0.3:8000'], "invalid --backend '10.0.0.2,10.0.0.3:8000': give every backend a port or none (those without take the VIP's port)"],
      [['--vip-add', 'tcp:10.0.0.1:80', '--backend', '10.0.0.2', '--nat-source', 'x'], "invalid --nat-source 'x': expected an IPv4 or IPv6 address"],
      [['--vip-add', 'tcp:10.0.0.1:80', '--backend', '10.0.0.2', '--table-size', '100'], "invalid --table-size '100': expected a prime number up to 1048573, such as 65537"],
      [['--vip-del', 'tcp:10.0.0.1:80', '--backend', '10.0.0.2'], '--backend does not go with --vip-del (see xdp-lb --help)'],
    ];
    for (const [args, message] of cases) await expect(call(LB, ...args)).rejects.toThrow(new UsageError(message));
  });
});
