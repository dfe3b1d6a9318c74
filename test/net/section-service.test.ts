// xdp-filter run and xdp-sampler run beside xdp-root run, as their units run
// them: each puts its program in its slot on the root's interfaces, follows
// its section of the config on SIGHUP and takes it out on SIGTERM.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, ok, run, xdpRoot } from '../helpers/cli.js';
import { ifPinDir, makeLab, nsPinDir, type Lab } from '../helpers/netns.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from '../helpers/service.js';

let lab: Lab;
let dir: string;
let config: string;
const daemons: Array<{ d: Daemon; n: NotifySocket }> = [];

beforeEach(() => {
  lab = makeLab();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-sect-'));
  config = join(dir, 'xdplb.json');
});
afterEach(async () => {
  for (const { d, n } of daemons.reverse()) {
    if (d.proc.exitCode === null) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
    n.close();
  }
  daemons.length = 0;
  lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

async function start(command: string) {
  const n = new NotifySocket();
  await n.start();
  const d = startDaemon([...netnsWithSys(lab.server), BIN(command), 'run', '--config', config], { NOTIFY_SOCKET: n.path });
  daemons.push({ d, n });
  await n.waitFor(/^READY=1$/);
  return { d, n };
}

const writeConfig = (filter: object, sampler: object = { enabled: false }) =>
  writeFileSync(config, JSON.stringify({ interfaces: [lab.serverIf], mode: 'native', filter, sampler }));
const rootStatus = () => JSON.parse(ok(xdpRoot(['--status', '--interface', lab.serverIf, '--json'], { netns: lab.server })))[lab.serverIf];
const received = () => Number(/(\d+) received/.exec(run('ping', ['-n', '-q', '-c', '2', '-i', '0.05', '-W', '1', lab.serverIp], { netns: lab.client }).stdout)![1]);

describe('subprogram services', () => {
  it('run the filter and the sampler in their slots, follow the config on SIGHUP, leave on SIGTERM', async () => {
    writeConfig(
      { enabled: true, frags_drop: true, ptb_max_pps: 5, drop: [{ prefix: `${lab.clientIp}/32`, tag: 'client' }] },
      { enabled: true, rate: 1, verdict_rate: 10, snaplen: 128 },
    );
    await start('xdp-root');
    const filter = await start('xdp-filter');
    expect(await filter.n.waitFor(/^STATUS=/)).toBe(`STATUS=${lab.serverIf}: frags_drop on, ptb_max_pps 5, 1 prefixes dropped`);
    const sampler = await start('xdp-sampler');
    expect(await sampler.n.waitFor(/^STATUS=/)).toBe(`STATUS=${lab.serverIf}: packets 1 in 1, verdicts 1 in 10, snaplen 128`);
    const slots = rootStatus().subprograms.filter((p: { prog_loaded: boolean }) => p.prog_loaded).map((p: { slot: number; name: string }) => `${p.slot}=${p.name}`);
    expect(slots).toEqual(['1=xdp_sampler', '2=xdp_filter']);
    expect(received()).toBe(0);

    // The config is the whole truth: the emptied drop list empties the map.
    writeConfig({ enabled: true, frags_drop: false, ptb_max_pps: 0, drop: [] }, { enabled: true, rate: 1 });
    const mark = filter.n.lines.length;
    filter.d.proc.kill('SIGHUP');
    await filter.n.waitFor(/^READY=1$/, mark);
    expect(await filter.n.waitFor(/^STATUS=/, mark)).toBe(`STATUS=${lab.serverIf}: frags_drop off, ptb_max_pps 0, 0 prefixes dropped`);
    expect(received()).toBe(2);
    const filterId = rootStatus().subprograms[2].id;

    filter.d.proc.kill('SIGTERM');
    expect(await filter.d.exited).toBe(0);
    expect(rootStatus().subprograms[2].prog_loaded).toBe(false);
    expect(existsSync(`${ifPinDir(lab.server, lab.serverIf)}/filter`)).toBe(false);
    expect(existsSync(ifPinDir(lab.server, lab.serverIf))).toBe(true);
    expect(rootStatus().subprograms[1].name).toBe('xdp_sampler');
    expect(filterId).toBeGreaterThan(0);

    sampler.d.proc.kill('SIGTERM');
    expect(await sampler.d.exited).toBe(0);
    expect(rootStatus().subprograms[1].prog_loaded).toBe(false);
    expect(rootStatus().root_loaded).toBe(true);
  });

  it('runs the load balancer in its slot with the section\'s VIPs, and takes it out on SIGTERM', async () => {
    writeFileSync(config, JSON.stringify({
      interfaces: [lab.serverIf], mode: 'native',
      lb: {
        enabled: true,
        nat: { source_ipv4: lab.serverIp },
        vips: [{ address: '10.201.0.100', port: 8000, protocol: 'tcp', backends: [{ address: lab.clientIp, port: 8000 }] }],
      },
    }));
    await start('xdp-root');
    const lb = await start('xdp-lb');
    expect(await lb.n.waitFor(/^STATUS=/)).toMatch(new RegExp(`^STATUS=${lab.serverIf}: 1 VIPs, 1 backends, 0/\\d+ connections$`));
    expect(rootStatus().subprograms[7].name).toBe('xdp_lb');
    const s = JSON.parse(ok(run(BIN('xdp-lb'), ['--status', '--json'], { netns: lab.server })));
    expect(s.vips.map((v: { address: string; port: number }) => `${v.address}:${v.port}`)).toEqual(['10.201.0.100:8000']);
    expect(lb.d.stderr).toContain('xdp-lb: lb: vip tcp:10.201.0.100:8000 added (1 backends, nat)');
    // A reload logs each change by name.
    const mark = lb.d.stderr.length;
    writeFileSync(config, JSON.stringify({
      interfaces: [lab.serverIf], mode: 'native',
      lb: {
        enabled: true,
        nat: { source_ipv4: lab.serverIp },
        vips: [
          { address: '10.201.0.100', port: 8000, protocol: 'tcp', backends: [{ address: lab.clientIp, port: 8000, weight: 2 }, { address: '10.201.0.7', port: 8000 }] },
          { address: '10.201.0.101', port: 53, protocol: 'udp', backends: [{ address: lab.clientIp }] },
        ],
      },
    }));
    lb.d.proc.kill('SIGHUP');
    for (let i = 0; i < 50 && !lb.d.stderr.slice(mark).some((l) => l.includes('reloaded:')); i++) await new Promise((r) => setTimeout(r, 100));
    expect(lb.d.stderr.slice(mark).filter((l) => /^xdp-lb: (lb: vip |reloaded)/.test(l))).toEqual([
      `xdp-lb: lb: vip tcp:10.201.0.100:8000 backend ${lab.clientIp}:8000 weight 1 -> 2`,
      'xdp-lb: lb: vip tcp:10.201.0.100:8000 backend 10.201.0.7:8000 added',
      'xdp-lb: lb: vip udp:10.201.0.101:53 added (1 backends, nat)',
      'xdp-lb: reloaded: 3 change(s)',
    ]);
    lb.d.proc.kill('SIGTERM');
    expect(await lb.d.exited).toBe(0);
    expect(rootStatus().subprograms[7].prog_loaded).toBe(false);
    // Its state stays for the next start (connections are not reset); the
    // status says it runs nowhere.
    expect(existsSync(`${nsPinDir(lab.server)}/lb`)).toBe(true);
    const orphan = JSON.parse(ok(run(BIN('xdp-lb'), ['--status', '--json'], { netns: lab.server })));
    expect(orphan).toMatchObject({ loaded: true, orphan: true, interfaces: {} });
    expect(orphan.vips.map((v: { address: string }) => v.address)).toEqual(['10.201.0.100', '10.201.0.101']);
    expect(ok(run(BIN('xdp-lb'), ['--status'], { netns: lab.server }))).toMatch(/^Load balancer state pinned but attached to no interface/);
    // Started again, it adopts the state; --purge is refused while attached.
    const again = await start('xdp-lb');
    expect(await again.n.waitFor(/^STATUS=/)).toMatch(/2 VIPs, 3 backends/);
    const refused = run(BIN('xdp-lb'), ['--purge'], { netns: lab.server });
    expect([refused.code, refused.stderr]).toEqual([1, `xdp-lb: the load balancer is attached to ${lab.serverIf}: run xdp-lb --detach --interface ${lab.serverIf} first, then --purge\n`]);
    again.d.proc.kill('SIGTERM');
    expect(await again.d.exited).toBe(0);
    expect(ok(run(BIN('xdp-lb'), ['--purge'], { netns: lab.server }))).toBe('Removed the load balancer state of this network namespace.\n');
    expect(existsSync(`${nsPinDir(lab.server)}/lb`)).toBe(false);
    // The root's service still holds the interface: the namespace's
    // directory stays with it.
    expect(existsSync(ifPinDir(lab.server, lab.serverIf))).toBe(true);
  });

  it('refuses a reload whose drop list would not fit, before changing anything: the running list keeps dropping', async () => {
    writeConfig({ enabled: true, drop: [{ prefix: `${lab.clientIp}/32`, tag: 'client' }] });
    await start('xdp-root');
    const filter = await start('xdp-filter');
    expect(received()).toBe(0);
    // 65,537 IPv4 prefixes: one more than the list holds.
    const many = Array.from({ length: 65537 }, (_, i) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
    writeConfig({ enabled: true, drop: [`${lab.clientIp}/32`, ...many] });
    const mark = filter.d.stderr.length;
    const notes = filter.n.lines.length;
    filter.d.proc.kill('SIGHUP');
    await filter.n.waitFor(/^READY=1$/, notes);
    expect(await filter.n.waitFor(/^STATUS=/, notes)).toMatch(/^STATUS=reload failed, running the previous configuration: the IPv4 drop list of \S+ would hold 65538 prefixes: it holds at most 65536; /);
    expect(filter.d.stderr.slice(mark).join('\n')).toMatch(/reload failed, keeping the running configuration: the IPv4 drop list/);
    const listed = JSON.parse(ok(run(BIN('xdp-filter'), ['--status', '--json', '--interface', lab.serverIf], { netns: lab.server })))[lab.serverIf];
    expect(listed.source_drops.map((d: { address: string; tag: string }) => `${d.address} ${d.tag}`)).toEqual([`${lab.clientIp} client`]);
    expect(received()).toBe(0);
  });

  it('refuses to run a section that is not enabled, with one line', async () => {
    writeConfig({ enabled: false });
    await start('xdp-root');
    const r = run(BIN('xdp-filter'), ['run', '--config', config], { prefix: netnsWithSys(lab.server) });
    expect(r.stderr).toBe(`xdp-filter: filter is not enabled in ${config}: set "filter": { "enabled": true }\n`);
    expect(r.code).toBe(2);
    expect(rootStatus().subprograms[2].prog_loaded).toBe(false);
  });

  it('refuses a bad section setting, naming its line and key', async () => {
    writeFileSync(config, `{\n "interfaces": ["${lab.serverIf}"],\n "filter": {\n  "enabled": true,\n  "drop": ["10.0.0.0/33"]\n }\n}\n`);
    const r = run(BIN('xdp-filter'), ['run', '--config', config], { prefix: netnsWithSys(lab.server) });
    expect(r.stderr).toMatch(new RegExp(`^xdp-filter: ${config}:5:12: filter\\.drop\\[0\\]: invalid prefix '10\\.0\\.0\\.0/33': .*\\n$`));
    expect(r.code).toBe(2);
  });
});
