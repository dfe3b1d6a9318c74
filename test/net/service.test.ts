// `xdp-root run` as systemd runs it: notify socket, watchdog, SIGHUP with
// no packet lost, SIGKILL leaving the data plane to be adopted, SIGTERM
// detaching everything.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, BPF, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { ifPinDir, makeLab, type Lab } from '../helpers/netns.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from '../helpers/service.js';

let lab: Lab;
let notify: NotifySocket;
let dir: string;
let daemon: Daemon | undefined;
let config: string;

beforeEach(async () => {
  lab = makeLab();
  notify = new NotifySocket();
  await notify.start();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-svc-'));
  config = join(dir, 'xdplb.json');
});
afterEach(async () => {
  if (daemon && daemon.proc.exitCode === null) {
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
  }
  daemon = undefined;
  notify.close();
  lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const writeConfig = (c: object | string) => writeFileSync(config, typeof c === 'string' ? c : JSON.stringify(c));
const start = () =>
  startDaemon([...netnsWithSys(lab.server), BIN('xdp-root'), 'run', '--config', config], {
    NOTIFY_SOCKET: notify.path,
    WATCHDOG_USEC: '200000',
  });
const status = (ifname = lab.serverIf) => JSON.parse(ok(xdpRoot(['--status', '--interface', ifname, '--json'], { netns: lab.server })))[ifname];

/** A ping running in the background: sent and received when it ends. */
function backgroundPing(count: number, intervalS: string) {
  const p = spawn('nsenter', [`--net=/run/netns/${lab.client}`, 'ping', '-n', '-q', '-c', String(count), '-i', intervalS, lab.serverIp]);
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  return new Promise<{ sent: number; received: number }>((res) =>
    p.on('exit', () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out)!;
      res({ sent: Number(m[1]), received: Number(m[2]) });
    }),
  );
}

function addVeth(name: string): void {
  sh('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`], lab.server);
  sh('ip', ['link', 'set', name, 'up'], lab.server);
  sh('ip', ['link', 'set', `${name}p`, 'up'], lab.server);
}

describe('xdp-root run', () => {
  it('notifies READY, STATUS and WATCHDOG from its own pid, reloads on SIGHUP without losing a packet, detaches on SIGTERM', async () => {
    writeConfig({ interfaces: [lab.serverIf], mode: 'native' });
    daemon = start();
    await notify.waitFor(/^READY=1$/);
    expect(await notify.waitFor(/^STATUS=/)).toBe(`STATUS=${lab.serverIf} (native): all slots empty`);
    await notify.waitFor(/^WATCHDOG=1$/, 0, 2000);
    expect(status()).toMatchObject({ root_loaded: true, mode: 'native' });
    const rootId = status().root_id;

    // Reload twice while pings flow: add an interface, then take it away.
    const second = `${lab.serverIf}b`;
    addVeth(second);
    const pings = backgroundPing(150, '0.02');
    await new Promise((r) => setTimeout(r, 500));
    writeConfig({ interfaces: [lab.serverIf, second], mode: 'native' });
    let mark = notify.lines.length;
    daemon.proc.kill('SIGHUP');
    await notify.waitFor(/^RELOADING=1$/, mark);
    await notify.waitFor(/^READY=1$/, mark);
    expect(await notify.waitFor(/^STATUS=/, mark)).toBe(`STATUS=${lab.serverIf} (native): all slots empty; ${second} (native): all slots empty`);
    expect(status(second).root_loaded).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    writeConfig({ interfaces: [lab.serverIf], mode: 'native' });
    mark = notify.lines.length;
    daemon.proc.kill('SIGHUP');
    await notify.waitFor(/^READY=1$/, mark);
    expect(status(second)).toEqual({ root_loaded: false });
    expect(await pings).toEqual({ sent: 150, received: 150 });
    expect(status().root_id).toBe(rootId);

    // A broken config on reload changes nothing.
    writeConfig('{"mode": ');
    mark = daemon.stderr.length;
    daemon.proc.kill('SIGHUP');
    await notify.waitFor(/^READY=1$/, notify.lines.length - 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(daemon.stderr.slice(mark).join('\n')).toMatch(/reload failed, keeping the running configuration: .*invalid JSON/);
    expect(status().root_id).toBe(rootId);
    // STATUS says so until the next good reload, which logs what it changed.
    expect(notify.lines.filter((l) => l.startsWith('STATUS=')).at(-1)).toBe(
      `STATUS=reload failed, running the previous configuration: ${config}:1:10: invalid JSON: expected a value; ${lab.serverIf} (native): all slots empty`,
    );
    writeConfig({ interfaces: [lab.serverIf], mode: 'native' });
    mark = notify.lines.length;
    const logMark = daemon.stderr.length;
    daemon.proc.kill('SIGHUP');
    await notify.waitFor(/^READY=1$/, mark);
    expect(await notify.waitFor(/^STATUS=/, mark)).toBe(`STATUS=${lab.serverIf} (native): all slots empty`);
    expect(daemon.stderr.slice(logMark)).toContain('xdp-root: reloaded: nothing changed');

    daemon.proc.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(notify.lines).toContain('STOPPING=1');
    expect(status()).toEqual({ root_loaded: false });
    expect(existsSync(ifPinDir(lab.server, lab.serverIf))).toBe(false);
  });

  it('leaves the data plane running when killed, and the next start adopts it with its counters', async () => {
    writeConfig({ interfaces: [lab.serverIf], mode: 'skb' });
    daemon = start();
    await notify.waitFor(/^READY=1$/);
    ok(xdpRoot(['--load', '--interface', lab.serverIf, '--slot', '4', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_pass_test'], { netns: lab.server }));
    expect((await backgroundPing(3, '0.05')).received).toBe(3);
    const before = status();
    expect(before.subprograms[4].statistics.XDP_PASS).toBe(3);

    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    expect((await backgroundPing(3, '0.05')).received).toBe(3);
    expect(status().root_id).toBe(before.root_id);

    const mark = notify.lines.length;
    daemon = start();
    await notify.waitFor(/^READY=1$/, mark);
    expect(await notify.waitFor(/^STATUS=/, mark)).toBe(`STATUS=${lab.serverIf} (skb): slots 4=xdp_pass_test`);
    expect(daemon.stderr).toContain(`xdp-root: adopted the root on ${lab.serverIf} (skb mode)`);
    const after = status();
    expect(after.root_id).toBe(before.root_id);
    expect(after.subprograms[4].id).toBe(before.subprograms[4].id);
    expect(after.subprograms[4].statistics.XDP_PASS).toBe(6);
  });

  it('repairs what another command took away, says "degraded" while an interface is missing, and gives it its root back', async () => {
    const second = `${lab.serverIf}r`;
    addVeth(second);
    writeConfig({ interfaces: [lab.serverIf, second], mode: 'skb' });
    daemon = start();
    await notify.waitFor(/^READY=1$/);
    // Detached behind its back: attached again at the next check.
    let mark = daemon.stderr.length;
    ok(xdpRoot(['--detach', '--interface', lab.serverIf], { netns: lab.server }));
    const repaired = `xdp-root: ${lab.serverIf}: the root array was missing; attached again (skb mode)`;
    for (let i = 0; i < 100 && !daemon.stderr.slice(mark).includes(repaired); i++) await new Promise((r) => setTimeout(r, 50));
    expect(daemon.stderr.slice(mark)).toContain(repaired);
    expect(status()).toMatchObject({ root_loaded: true, mode: 'skb' });
    // An interface that goes away: degraded, named, and the watchdog still
    // fed (nothing failed: it waits for the interface).
    mark = notify.lines.length;
    sh('ip', ['link', 'del', second], lab.server);
    expect(await notify.waitFor(/^STATUS=degraded/, mark)).toBe(
      `STATUS=degraded: ${second}: no such interface (waiting for it); ${lab.serverIf} (skb): all slots empty; ${second}: no such interface`,
    );
    const fed = notify.lines.length;
    await notify.waitFor(/^WATCHDOG=1$/, fed, 2000);
    // It comes back: its root comes back, and the status with it.
    mark = notify.lines.length;
    addVeth(second);
    expect(await notify.waitFor(/^STATUS=(?!degraded)/, mark)).toBe(`STATUS=${lab.serverIf} (skb): all slots empty; ${second} (skb): all slots empty`);
    expect(status(second)).toMatchObject({ root_loaded: true, mode: 'skb' });
    daemon.proc.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
  });

  it('carries on when the notify socket goes away, logs it once, and still stops cleanly', async () => {
    writeConfig({ interfaces: [lab.serverIf], mode: 'skb' });
    daemon = start();
    await notify.waitFor(/^READY=1$/);
    notify.close(); // the socket file goes: every later notification fails
    await new Promise((r) => setTimeout(r, 300));
    daemon.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    daemon.proc.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    const warned = daemon.stderr.filter((l) => l.includes('cannot notify systemd'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/^xdp-root: cannot notify systemd \(sd_notify failed with errno \d+\); carrying on without it$/);
    expect(daemon.stderr).toContain('xdp-root: stopped on SIGTERM');
    expect(status()).toEqual({ root_loaded: false });
    notify = new NotifySocket();
    await notify.start();
  });

  it('prints its decision with --dry-run and changes nothing', () => {
    writeConfig({ interfaces: [lab.serverIf], mode: 'native' });
    const r = run(BIN('xdp-root'), ['run', '--config', config, '--dry-run'], { prefix: netnsWithSys(lab.server) });
    expect(r.stdout).toBe(`interfaces listed in the config: ${lab.serverIf}\nmode: native\nwould attach to: ${lab.serverIf}\n`);
    expect(r.code).toBe(0);
    expect(status()).toEqual({ root_loaded: false });
  });

  for (const [what, prepare, code, message] of [
    ['a missing config', () => undefined, 2, () => `xdp-root: cannot read config ${config}: no such file`],
    ['invalid JSON', () => writeConfig('{"interfaces": ['), 2, () => `xdp-root: ${config}:1:17: invalid JSON: expected ']'`],
    ['an unknown interface', () => writeConfig({ interfaces: ['nosuch0'] }), 2, () => 'xdp-root: nosuch0: no such interface'],
    ['a foreign XDP program', () => {
      writeConfig({ interfaces: [lab.serverIf] });
      sh('ip', ['link', 'set', 'dev', lab.serverIf, 'xdpgeneric', 'object', BPF('xdp_plain.o'), 'program', 'xdp_plain_pass'], lab.server);
    }, 2, () => new RegExp(`^xdp-root: ${lab.serverIf} already has XDP program 'xdp_plain_pass' \\(id \\d+, skb mode\\) attached: pass --force to replace it$`)],
  ] as const) {
    it(`fails with one line on ${what}, attaching nothing`, () => {
      prepare();
      const r = run(BIN('xdp-root'), ['run', '--config', config], { prefix: netnsWithSys(lab.server), env: { NOTIFY_SOCKET: notify.path } });
      const m = message();
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      if (typeof m === 'string') expect(lines[0]).toBe(m);
      else expect(lines[0]).toMatch(m);
      expect(r.code).toBe(code);
      expect(notify.lines).not.toContain('READY=1');
      expect(existsSync(ifPinDir(lab.server, lab.serverIf))).toBe(false);
    });
  }
});
