// xdp-filter on real interfaces: a veth pair between two namespaces, real
// pings through the root array, another process's edits seen by the data
// path, and Packet Too Big seen by the sender's own kernel.
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { ifPinDir, makeLab, type Lab } from '../helpers/netns.js';

let lab: Lab;
const OTHER_CLIENT_IP = '10.201.0.3';

beforeEach(() => {
  lab = makeLab();
  sh('ip', ['addr', 'add', `${OTHER_CLIENT_IP}/24`, 'dev', lab.clientIf], lab.client);
  ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns: lab.server }));
});
afterEach(() => lab.destroy());

const filter = (args: string[]) => run(BIN('xdp-filter'), args, { netns: lab.server });
const status = () => JSON.parse(ok(filter(['--status', '--interface', lab.serverIf, '--json'])))[lab.serverIf];
const slotOf = (n: number) => JSON.parse(ok(xdpRoot(['--status', '--interface', lab.serverIf, '--json'], { netns: lab.server })))[lab.serverIf].subprograms[n];

function ping(count: number, opts: { from?: string; size?: number } = {}): { sent: number; received: number; errors: number } {
  const args = ['-n', '-q', '-c', String(count), '-i', '0.05', '-W', '1'];
  if (opts.from) args.push('-I', opts.from);
  if (opts.size) args.push('-s', String(opts.size), '-M', 'dont');
  const r = run('ping', [...args, lab.serverIp], { netns: lab.client });
  const m = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) errors)?/.exec(r.stdout);
  if (!m) throw new Error(`unexpected ping output: ${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), received: Number(m[2]), errors: Number(m[3] ?? 0) };
}

const ZERO_STATS = {
  eth_frame_err: 0, ip_header_err: 0, ip6_header_err: 0, ip_drop_count: 0, ip6_drop_count: 0,
  ip_frag_drop_count: 0, ptb_sent_count: 0, ptb_err_count: 0, ptb_mem_err_count: 0,
};

describe('xdp-filter on a veth pair', () => {
  it('attaches to slot 2 with its defaults and detaches, leaving the slot and its pins empty', () => {
    expect(ok(filter(['--attach', '--interface', lab.serverIf]))).toMatch(
      new RegExp(`^Attached xdp_filter \\(id \\d+\\) to slot 2 of ${lab.serverIf}: frags_drop false, ptb_max_pps 0\\.\\n$`),
    );
    expect(slotOf(2)).toMatchObject({ prog_loaded: true, name: 'xdp_filter' });
    expect(status()).toEqual({ configuration: { frags_drop: false, ptb_send: false, ptb_max_pps: 0 }, stats: ZERO_STATS, source_drops: [] });
    expect(ping(3)).toEqual({ sent: 3, received: 3, errors: 0 });
    expect(slotOf(2).statistics.XDP_PASS).toBe(3);
    expect(ok(filter(['--detach', '--interface', lab.serverIf]))).toBe(`Detached xdp_filter from ${lab.serverIf}.\n`);
    expect(slotOf(2).prog_loaded).toBe(false);
    expect(sh('ls', [ifPinDir(lab.server, lab.serverIf)])).not.toContain('filter');
    expect(filter(['--status', '--interface', lab.serverIf]).stderr).toBe(
      `xdp-filter: xdp-filter is not attached to ${lab.serverIf}: run xdp-filter --attach --interface ${lab.serverIf} first\n`,
    );
  });

  it('a listed source cannot reach the receiver while another can; --no-drop restores it', () => {
    ok(filter(['--attach', '--interface', lab.serverIf]));
    expect(ok(filter(['--drop', '--ips', `${lab.clientIp}/32,2001:db8::/32`, '--tags', 'scanner', '--interface', lab.serverIf]))).toBe(
      `Dropping sources ${lab.clientIp}/32, 2001:db8::/32 on ${lab.serverIf}.\n`,
    );
    expect(ping(4)).toEqual({ sent: 4, received: 0, errors: 0 });
    expect(ping(3, { from: OTHER_CLIENT_IP })).toEqual({ sent: 3, received: 3, errors: 0 });
    const s = status();
    expect(s.stats).toEqual({ ...ZERO_STATS, ip_drop_count: 4 });
    expect(s.source_drops).toEqual([
      { address: lab.clientIp, prefix_len: 32, tag: 'scanner', load_time: expect.stringMatching(/^\w{3}, \d\d \w{3} \d{4} [\d:]{8} \+0000$/), hits: 4 },
      { address: '2001:db8::', prefix_len: 32, tag: 'scanner', load_time: s.source_drops[0].load_time, hits: 0 },
    ]);

    // The text status, as an operator reads it.
    const text = ok(filter(['--status', '--interface', lab.serverIf]));
    expect(text).toContain(`=================== Status for interface '${lab.serverIf}' ===================\nCurrent Configuration:\n\nfrags_drop? false\nptb_send? false\nptb_max_pps: 0\n\nDrop Maps for interface '${lab.serverIf}':\n`);
    expect(text).toMatch(new RegExp(`│ ${lab.clientIp.replace(/\./g, '\\.')} +│ 32 +│ scanner │ .* │ 4 +│`));
    expect(text).toContain(`\nStats for interface '${lab.serverIf}':\n\neth_frame_err: 0\n`);
    expect(text).toContain('\nip_drop_count: 4\n');

    expect(ok(filter(['--no-drop', '--ips', lab.clientIp, '--interface', lab.serverIf]))).toBe(
      `No longer dropping ${lab.clientIp}/32 on ${lab.serverIf}.\n`,
    );
    expect(ping(3)).toEqual({ sent: 3, received: 3, errors: 0 });
    expect(status().source_drops.map((d: { address: string }) => d.address)).toEqual(['2001:db8::']);

    ok(filter(['--clear', '--interface', lab.serverIf]));
    ok(filter(['--clear-status', '--interface', lab.serverIf]));
    expect(status()).toMatchObject({ stats: ZERO_STATS, source_drops: [] });
  });

  it('drops a fragmented ping when frags_drop is on, and the sender learns the MTU from the Packet Too Big', () => {
    // A veth delivers XDP_TX frames only to a peer that runs XDP itself
    // (or has GRO on): give the client side an empty root array.
    ok(xdpRoot(['--attach', '--interface', lab.clientIf, '--mode', 'native'], { netns: lab.client }));
    ok(filter(['--attach', '--interface', lab.serverIf, '--no-frags-drop', '--ptb-max-pps', '10']));
    expect(ping(2, { size: 3000 })).toEqual({ sent: 2, received: 2, errors: 0 });

    const id = slotOf(2).id;
    expect(ok(filter(['--attach', '--interface', lab.serverIf, '--frags-drop']))).toBe(
      `xdp_filter already in slot 2 of ${lab.serverIf}: frags_drop true, ptb_max_pps 10.\n`,
    );
    expect(slotOf(2).id).toBe(id); // configured in place, not reloaded
    const before = sh('ip', ['-o', 'route', 'get', lab.serverIp], lab.client);
    expect(before).not.toMatch(/mtu/);

    // 3000 bytes of ICMP data: fragments of 1500, 1500 and 48 bytes; the
    // first of each ping is answered.
    expect(ping(2, { size: 3000 })).toEqual({ sent: 2, received: 0, errors: 2 });
    expect(sh('ip', ['-o', 'route', 'get', lab.serverIp], lab.client)).toMatch(/cache expires \d+sec mtu 1500/);
    expect(status().stats).toEqual({ ...ZERO_STATS, ip_frag_drop_count: 6, ptb_sent_count: 2 });
    expect(slotOf(2).statistics).toMatchObject({ XDP_TX: 2, XDP_DROP: 4 });

    // Small pings are not fragments: they still pass.
    expect(ping(2)).toEqual({ sent: 2, received: 2, errors: 0 });
  });

  it('--ptb-max-pps 0 keeps dropping fragments but sends no reply', () => {
    ok(xdpRoot(['--attach', '--interface', lab.clientIf, '--mode', 'native'], { netns: lab.client }));
    ok(filter(['--attach', '--interface', lab.serverIf, '--frags-drop', '--ptb-max-pps', '0']));
    expect(ping(2, { size: 3000 })).toEqual({ sent: 2, received: 0, errors: 0 });
    expect(sh('ip', ['-o', 'route', 'get', lab.serverIp], lab.client)).not.toMatch(/mtu/);
    expect(status()).toMatchObject({ configuration: { frags_drop: true, ptb_send: false, ptb_max_pps: 0 }, stats: { ...ZERO_STATS, ip_frag_drop_count: 6 } });
  });

  it('another process edits the same maps: the status lists every interface running the filter', () => {
    ok(filter(['--attach', '--interface', lab.serverIf, '--frags-drop', '--ptb-max-pps', '20']));
    ok(filter(['--drop', '--ips', '192.0.2.0/24', '--interface', lab.serverIf]));
    const all = JSON.parse(ok(filter(['--status', '--json'])));
    expect(all[lab.serverIf]).toEqual(status());
    expect(all[lab.serverIf].configuration).toEqual({ frags_drop: true, ptb_send: true, ptb_max_pps: 20 });
  });

  it('a filter taken out with xdp-root --unload comes back with its lists and configuration', () => {
    ok(filter(['--attach', '--interface', lab.serverIf, '--frags-drop', '--ptb-max-pps', '7']));
    ok(filter(['--drop', '--ips', lab.clientIp, '--tags', 'kept', '--interface', lab.serverIf]));
    ok(xdpRoot(['--unload', '--interface', lab.serverIf, '--slot', '2'], { netns: lab.server }));
    expect(ping(2)).toEqual({ sent: 2, received: 2, errors: 0 });
    expect(ok(filter(['--attach', '--interface', lab.serverIf]))).toMatch(/^Attached xdp_filter \(id \d+\) to slot 2 of \S+: frags_drop true, ptb_max_pps 7\.\n$/);
    expect(ping(2)).toEqual({ sent: 2, received: 0, errors: 0 });
    expect(status().source_drops).toMatchObject([{ address: lab.clientIp, tag: 'kept', hits: 2 }]);
  });

  it('IPv6: a fragmented ping is dropped and the sender captures the Packet Too Big on its own interface', async () => {
    const [client6, server6] = ['fd00:201::1', 'fd00:201::2'];
    for (const [ns, dev, addr] of [[lab.client, lab.clientIf, client6], [lab.server, lab.serverIf, server6]]) {
      for (const conf of ['all', 'default', dev]) sh('sysctl', ['-q', '-w', `net.ipv6.conf.${conf}.disable_ipv6=0`], ns);
      sh('ip', ['-6', 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad'], ns);
    }
    const macOf = (ns: string, dev: string) => JSON.parse(sh('ip', ['-j', 'link', 'show', dev], ns))[0].address as string;
    sh('ip', ['-6', 'neigh', 'replace', server6, 'lladdr', macOf(lab.server, lab.serverIf), 'dev', lab.clientIf, 'nud', 'permanent'], lab.client);
    sh('ip', ['-6', 'neigh', 'replace', client6, 'lladdr', macOf(lab.client, lab.clientIf), 'dev', lab.serverIf, 'nud', 'permanent'], lab.server);
    ok(xdpRoot(['--attach', '--interface', lab.clientIf, '--mode', 'native'], { netns: lab.client }));
    ok(filter(['--attach', '--interface', lab.serverIf, '--frags-drop', '--ptb-max-pps', '10']));

    // The sender's view: tcpdump on its own interface, for one ICMPv6 type 2.
    const capture = spawn('nsenter', [`--net=/run/netns/${lab.client}`, 'tcpdump', '-n', '-vv', '-l', '-c', '1', '-i', lab.clientIf, 'icmp6 and ip6[40] == 2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    capture.stdout.on('data', (d) => (out += d));
    const done = new Promise<number>((resolve) => capture.on('exit', (code) => resolve(code ?? -1)));
    await new Promise<void>((resolve, reject) => {
      capture.stderr.on('data', (d) => String(d).includes('listening on') && resolve());
      setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
    });
    try {
      const r = run('ping', ['-6', '-n', '-q', '-c', '1', '-W', '1', '-s', '3000', server6], { netns: lab.client });
      expect(r.stdout).toMatch(/1 packets transmitted, 0 received/);
      const timeout = setTimeout(() => capture.kill(), 10_000);
      expect(await done).toBe(0);
      clearTimeout(timeout);
    } finally {
      capture.kill();
    }
    // The fragment was 1496 bytes (40 + 8 + 1448); tcpdump checks the sum.
    expect(out).toContain(`payload length: 1240) ${server6} > ${client6}: [icmp6 sum ok] ICMP6, packet too big, mtu 1496`);
    expect(sh('ip', ['-6', '-o', 'route', 'get', server6], lab.client)).toMatch(/ mtu 1496 /);
    // 3008 bytes of ICMPv6 in fragments of 1448 + 1448 + 112: the first is answered.
    expect(status().stats).toEqual({ ...ZERO_STATS, ip_frag_drop_count: 3, ptb_sent_count: 1 });
  });
});
