// xdp-root on real interfaces: network namespaces and a veth pair made here,
// real pings, real attach in native and skb mode, `ip` and bpffs as witnesses.
import { existsSync, rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, BPF, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { deleteNamespaces, ifPinDir, makeLab, nsPinDir, uniqueTag, type Lab } from '../helpers/netns.js';

let lab: Lab;
beforeEach(() => {
  lab = makeLab();
});
afterEach(() => lab.destroy());

const root = (args: string[]) => xdpRoot(args, { netns: lab.server });

/** Echo requests sent and replies received by a ping from the client. */
function ping(count: number): { sent: number; received: number } {
  const r = run('ping', ['-n', '-q', '-c', String(count), '-i', '0.05', '-W', '1', lab.serverIp], { netns: lab.client });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  if (!m) throw new Error(`unexpected ping output: ${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

/** What `ip` says is attached: mode and program id. */
function xdpOnDevice(): { mode: number; id: number } | null {
  const [link] = JSON.parse(sh('ip', ['-j', '-d', 'link', 'show', lab.serverIf], lab.server));
  return link.xdp ? { mode: link.xdp.mode, id: link.xdp.prog?.id ?? link.xdp.attached?.[0]?.prog?.id } : null;
}

function statusJson() {
  return JSON.parse(ok(root(['--status', '--interface', lab.serverIf, '--json'])))[lab.serverIf];
}

for (const mode of ['native', 'skb'] as const) {
  describe(`in ${mode} mode`, () => {
    it('forwards pings, drops them with a drop program in a slot, forwards again after unload', () => {
      expect(ok(root(['--attach', '--interface', lab.serverIf, '--mode', mode]))).toBe(
        `Attached root array to ${lab.serverIf} (${mode} mode).\n`,
      );
      const status = statusJson();
      expect(status.root_loaded).toBe(true);
      expect(status.mode).toBe(mode);
      // ip's witness: XDP_ATTACHED_DRV is 1, XDP_ATTACHED_SKB is 2.
      expect(xdpOnDevice()).toEqual({ mode: mode === 'native' ? 1 : 2, id: status.root_id });

      expect(ping(3)).toEqual({ sent: 3, received: 3 });

      ok(root(['--load', '--interface', lab.serverIf, '--slot', '5', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_drop_test']));
      ok(root(['--clear', '--interface', lab.serverIf]));
      expect(ping(5)).toEqual({ sent: 5, received: 0 });
      const dropped = statusJson();
      expect(dropped.subprograms[5]).toMatchObject({ slot: 5, prog_loaded: true, name: 'xdp_drop_test' });
      expect(dropped.subprograms[5].statistics.XDP_DROP).toBe(5);
      // 14 Ethernet + 20 IPv4 + 8 ICMP + 56 ping payload.
      expect(dropped.subprograms[5].bytes.XDP_DROP).toBe(5 * 98);
      expect(dropped.statistics).toEqual({ XDP_ABORTED: 0, XDP_DROP: 5, XDP_PASS: 0, XDP_TX: 0, XDP_REDIRECT: 0, XDP_INVALID_ACTION: 0 });

      // A second process reads the same state back from the kernel.
      expect(statusJson()).toEqual(dropped);

      expect(ok(root(['--unload', '--interface', lab.serverIf, '--slot', '5']))).toBe(`Emptied slot 5 of ${lab.serverIf}.\n`);
      expect(ping(3)).toEqual({ sent: 3, received: 3 });
      expect(statusJson().subprograms[5].prog_loaded).toBe(false);
    });

    it('detaches, leaving no XDP program on the device and nothing in bpffs', () => {
      ok(root(['--attach', '--interface', lab.serverIf, '--mode', mode]));
      ok(root(['--load', '--interface', lab.serverIf, '--slot', '1', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_pass_test']));
      const dir = ifPinDir(lab.server, lab.serverIf);
      expect(existsSync(dir)).toBe(true);
      expect(ok(root(['--detach', '--interface', lab.serverIf]))).toBe(`Detached root array from ${lab.serverIf}.\n`);
      expect(xdpOnDevice()).toBeNull();
      expect(existsSync(dir)).toBe(false);
      // Nothing else was pinned for the namespace: its directory goes too.
      expect(existsSync(nsPinDir(lab.server))).toBe(false);
      expect(ok(root(['--status', '--interface', lab.serverIf, '--json']))).toBe(
        JSON.stringify({ [lab.serverIf]: { root_loaded: false } }, null, 2) + '\n',
      );
      expect(ping(2)).toEqual({ sent: 2, received: 2 });
    });
  });
}

describe('the slot mask', () => {
  it('reports a slot filled by another tool, which the root skips until the next --load', () => {
    ok(root(['--attach', '--interface', lab.serverIf, '--mode', 'native']));
    const foreign = `/sys/fs/bpf/xdplb-foreign-${process.pid}`;
    try {
      sh('bpftool', ['prog', 'loadall', BPF('xdp_fixtures.o'), foreign, 'type', 'xdp']);
      sh('bpftool', ['map', 'update', 'pinned', `${ifPinDir(lab.server, lab.serverIf)}/slots`,
        'key', '3', '0', '0', '0', 'value', 'pinned', `${foreign}/xdp_drop_test`]);
      expect(ping(2)).toEqual({ sent: 2, received: 2 });
      const status = statusJson();
      expect(status.subprograms[3]).toMatchObject({ prog_loaded: true, name: 'xdp_drop_test' });
      expect(status.slot_mask_mismatch).toEqual({ skipped: [3], empty: [] });
      expect(ok(root(['--status', '--interface', lab.serverIf]))).toContain(
        `Warning: the slot mask of ${lab.serverIf} disagrees with its slots: slot 3 holds a program that the root skips`,
      );

      // --load rewrites the mask from the slots: slot 3 runs from now on.
      ok(root(['--load', '--interface', lab.serverIf, '--slot', '6', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_pass_test']));
      expect(statusJson().slot_mask_mismatch).toBeUndefined();
      expect(ok(root(['--status', '--interface', lab.serverIf]))).not.toContain('Warning');
      expect(ping(2)).toEqual({ sent: 2, received: 0 });
    } finally {
      rmSync(foreign, { recursive: true, force: true });
    }
  });
});

describe('attach', () => {
  it('is idempotent when the root is already ours', () => {
    ok(root(['--attach', '--interface', lab.serverIf, '--mode', 'native']));
    const before = statusJson();
    expect(ok(root(['--attach', '--interface', lab.serverIf]))).toBe(`Root array already attached to ${lab.serverIf} (native mode).\n`);
    expect(statusJson().root_id).toBe(before.root_id);
  });

  it('never reinstalls a deleted device\'s chain on a new device of that name; reports the pins gone and cleans them', () => {
    ok(root(['--attach', '--interface', lab.serverIf, '--mode', 'native']));
    ok(root(['--load', '--interface', lab.serverIf, '--slot', '2', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_drop_test']));
    const before = statusJson();
    const oldDir = ifPinDir(lab.server, lab.serverIf);
    sh('ip', ['link', 'del', lab.serverIf], lab.server);
    sh('ip', ['link', 'add', lab.serverIf, 'type', 'veth', 'peer', 'name', `${lab.serverIf}p`], lab.server);
    sh('ip', ['link', 'set', lab.serverIf, 'up'], lab.server);
    const newIndex = JSON.parse(sh('ip', ['-j', 'link', 'show', lab.serverIf], lab.server))[0].ifindex;
    // The new device has no root; the old pins are reported as a gone device's.
    const all = JSON.parse(ok(root(['--status', '--json'])));
    expect(all).toEqual({ [`${lab.serverIf}@if${before.ifindex}`]: { root_loaded: false, gone: true, ifindex: before.ifindex } });
    expect(ok(root(['--status']))).toContain(
      `Root array of ${lab.serverIf}@if${before.ifindex} (ifindex ${before.ifindex}) is pinned but its device is gone: run xdp-root --detach --interface ${lab.serverIf} to remove the pins.`,
    );
    // Attaching gives the new device a fresh chain: nothing in its slots.
    expect(ok(root(['--attach', '--interface', lab.serverIf, '--mode', 'skb']))).toBe(`Attached root array to ${lab.serverIf} (skb mode).\n`);
    const after = statusJson();
    expect(after.ifindex).toBe(newIndex);
    expect(after.root_id).not.toBe(before.root_id);
    expect(after.subprograms.every((p: { prog_loaded: boolean }) => !p.prog_loaded)).toBe(true);
    // --detach takes the live root and the gone device's pins.
    expect(ok(root(['--detach', '--interface', lab.serverIf]))).toBe(
      `Removed the stale pins of 1 deleted device(s) named ${lab.serverIf}.\nDetached root array from ${lab.serverIf}.\n`,
    );
    expect(existsSync(oldDir)).toBe(false);
    expect(JSON.parse(ok(root(['--status', '--json'])))).toEqual({});
  });

  it('no subprogram\'s status lists a deleted interface as attached; the balancer\'s state is shown orphaned', () => {
    const tool = (name: string, args: string[]) => ok(run(BIN(name), args, { netns: lab.server }));
    ok(root(['--attach', '--interface', lab.serverIf, '--mode', 'native']));
    tool('xdp-sampler', ['--attach', '--interface', lab.serverIf, '--rate', '10']);
    tool('xdp-filter', ['--attach', '--interface', lab.serverIf]);
    tool('xdp-lb', ['--attach', '--interface', lab.serverIf]);
    try {
      sh('ip', ['link', 'del', lab.serverIf], lab.server);
      expect(JSON.parse(tool('xdp-sampler', ['--status', '--json']))).toEqual({});
      expect(JSON.parse(tool('xdp-filter', ['--status', '--json']))).toEqual({});
      expect(JSON.parse(tool('xdp-lb', ['--status', '--json']))).toMatchObject({ loaded: true, orphan: true, interfaces: {} });
      expect(tool('xdp-filter', ['--status'])).toBe('xdp-filter is not attached to any interface.\n');
    } finally {
      root(['--detach', '--interface', lab.serverIf]);
      run(BIN('xdp-lb'), ['--purge'], { netns: lab.server });
    }
  });

  it('refuses an attach whose pins would vanish with the command (ip netns exec), saying what to run instead', () => {
    const r = run('ip', ['netns', 'exec', lab.server, BIN('xdp-root'), '--attach', '--interface', lab.serverIf]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'xdp-root: no bpffs is mounted on /sys/fs/bpf in this mount namespace (ip netns exec remounts /sys): pins made here would vanish ' +
        'when this command exits and take the data plane with them; run it as `nsenter --net=/run/netns/NAME xdp-root ...` instead, ' +
        'which keeps the host\'s /sys/fs/bpf\n',
    );
    expect(xdpOnDevice()).toBeNull();
  });

  it('names the MTU when native XDP refuses it, and falls back to skb in auto mode saying why', () => {
    // On a veth the peer's MTU is the one that counts.
    sh('ip', ['link', 'set', lab.serverIf, 'mtu', '9000'], lab.server);
    sh('ip', ['link', 'set', lab.clientIf, 'mtu', '9000'], lab.client);
    const r = root(['--attach', '--interface', lab.serverIf, '--mode', 'native']);
    expect([r.code, r.stderr]).toEqual([1, `xdp-root: cannot attach the root to ${lab.serverIf} in native mode: the driver refuses native XDP at this MTU ` +
      "(9000; on a veth the peer's MTU counts) (ERANGE); lower the MTU (on veth: at most one page of frame, about 3500 bytes, unless multi-buffer XDP is on) or use --mode skb\n"]);
    expect(xdpOnDevice()).toBeNull();
    const auto = root(['--attach', '--interface', lab.serverIf]);
    expect(auto.code).toBe(0);
    expect(auto.stderr).toContain(`xdp-root: warning: ${lab.serverIf}: native XDP refused (the driver refuses native XDP at this MTU (9000; on a veth the peer's MTU counts) (ERANGE)); attached in skb (generic) mode\n`);
    expect(statusJson().mode).toBe('skb');
  });

  it('warns at attach when XDP_TX would be dropped: a veth whose peer here runs no XDP program', () => {
    const a = `${lab.serverIf}w`;
    sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', `${a}p`], lab.server);
    for (const d of [a, `${a}p`]) sh('ip', ['link', 'set', d, 'up'], lab.server);
    const warned = root(['--attach', '--interface', a, '--mode', 'native']);
    expect(warned.stderr).toBe(`xdp-root: warning: ${a} is a veth whose peer ${a}p runs no XDP program and has GRO off: packets a slot sends back ` +
      `with XDP_TX are dropped by the kernel (ethtool -S ${a} counts them as xdp_tx errors); attach an XDP program to ${a}p or turn GRO on there\n`);
    ok(root(['--detach', '--interface', a]));
    sh('ip', ['link', 'set', 'dev', `${a}p`, 'xdpdrv', 'object', BPF('xdp_plain.o'), 'program', 'xdp_plain_pass'], lab.server);
    expect(root(['--attach', '--interface', a, '--mode', 'native']).stderr).toBe('');
    // Peers in another namespace cannot be seen from here: no warning either way.
    expect(root(['--attach', '--interface', lab.serverIf, '--mode', 'native']).stderr).toBe('');
    ok(root(['--detach', '--interface', `${a},${lab.serverIf}`]));
  });

  it('says an interface it does not know is unknown, for --status too', () => {
    for (const args of [['--status', '--interface', 'nosuch0'], ['--status', '--interface', 'nosuch0', '--json'], ['--detach', '--interface', 'nosuch0']]) {
      const r = root(args);
      expect([r.code, r.stderr]).toEqual([1, "xdp-root: unknown interface 'nosuch0': no such network device in this namespace\n"]);
    }
  });

  it('replaces a foreign XDP program only with --force', () => {
    sh('ip', ['link', 'set', 'dev', lab.serverIf, 'xdpdrv', 'object', BPF('xdp_plain.o'), 'program', 'xdp_plain_drop'], lab.server);
    const foreign = xdpOnDevice();
    expect(foreign).not.toBeNull();
    const r = root(['--attach', '--interface', lab.serverIf]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `xdp-root: ${lab.serverIf} already has XDP program 'xdp_plain_drop' (id ${foreign!.id}, native mode) attached: pass --force to replace it\n`,
    );
    expect(xdpOnDevice()).toEqual(foreign);
    expect(ok(root(['--attach', '--interface', lab.serverIf, '--force']))).toBe(`Attached root array to ${lab.serverIf} (native mode).\n`);
    expect(xdpOnDevice()).toEqual({ mode: 1, id: statusJson().root_id });
    expect(ping(2)).toEqual({ sent: 2, received: 2 });
  });

  it('attaches several interfaces at once, or none when one of them is bad', () => {
    const second = `${lab.serverIf}d`;
    sh('ip', ['link', 'add', second, 'type', 'veth', 'peer', 'name', `${second}p`], lab.server);
    sh('ip', ['link', 'set', second, 'up'], lab.server);
    const bad = root(['--attach', '--interface', `${lab.serverIf},${second},nosuch0`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`xdp-root: unknown interface 'nosuch0': no such network device in this namespace\n`);
    expect(JSON.parse(ok(root(['--status', '--json'])))[lab.serverIf]).toBeUndefined();
    ok(root(['--attach', '--interface', `${lab.serverIf},${second}`, '--mode', 'skb']));
    const all = JSON.parse(ok(root(['--status', '--interface', `${lab.serverIf},${second}`, '--json'])));
    expect(all[lab.serverIf].mode).toBe('skb');
    expect(all[second].mode).toBe('skb');
    ok(root(['--detach', '--interface', `${lab.serverIf},${second}`]));
    expect(existsSync(nsPinDir(lab.server))).toBe(false);
  });
});

describe('interfaces are a namespace and an ifindex', () => {
  it('two same-named interfaces in two namespaces are attached, listed and detached independently', () => {
    const tag = uniqueTag();
    const [a, b] = [`xra-${tag}`, `xrb-${tag}`];
    const dev = 'eth0';
    try {
      for (const ns of [a, b]) {
        sh('ip', ['netns', 'add', ns]);
        sh('ip', ['-n', ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'peer0']);
        sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      }
      const inNs = (ns: string, args: string[]) => xdpRoot(args, { netns: ns });
      ok(inNs(a, ['--attach', '--interface', dev, '--mode', 'skb']));
      ok(inNs(a, ['--load', '--interface', dev, '--slot', '4', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_drop_test']));
      const rootA = JSON.parse(ok(inNs(a, ['--status', '--json'])))[dev];
      // B attaches its own eth0: A's root stays attached, with its slot.
      expect(ok(inNs(b, ['--attach', '--interface', dev, '--mode', 'skb']))).toBe(`Attached root array to ${dev} (skb mode).\n`);
      const rootB = JSON.parse(ok(inNs(b, ['--status', '--json'])))[dev];
      expect(rootB.root_id).not.toBe(rootA.root_id);
      expect(JSON.parse(ok(inNs(a, ['--status', '--json'])))[dev]).toMatchObject({ root_loaded: true, root_id: rootA.root_id });
      expect(JSON.parse(ok(inNs(a, ['--status', '--json'])))[dev].subprograms[4].name).toBe('xdp_drop_test');
      expect(JSON.parse(ok(inNs(b, ['--status', '--json'])))[dev].subprograms[4].prog_loaded).toBe(false);
      // The host's namespace sees neither.
      expect(JSON.parse(ok(xdpRoot(['--status', '--json'])))[dev]).toBeUndefined();
      // B detaches its own: A's is untouched.
      ok(inNs(b, ['--detach', '--interface', dev]));
      expect(JSON.parse(ok(inNs(b, ['--status', '--json'])))).toEqual({});
      const still = JSON.parse(ok(inNs(a, ['--status', '--json'])))[dev];
      expect(still).toMatchObject({ root_loaded: true, root_id: rootA.root_id, mode: 'skb' });
      const [link] = JSON.parse(sh('ip', ['-j', 'link', 'show', dev], a));
      expect(link.xdp.prog?.id ?? link.xdp.attached?.[0]?.prog?.id).toBe(rootA.root_id);
      ok(inNs(a, ['--detach', '--interface', dev]));
    } finally {
      deleteNamespaces(a, b);
    }
  });
});
