// xdp-sampler on a veth pair with real UDP traffic: captures read back by
// tshark and tcpdump as independent witnesses (packet count, lengths, payload
// bytes, interface name, verdict comments), streaming to stdout, clean stop
// on SIGINT, and rate changes without a reload.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, BPF, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { ifPinDir, makeLab, type Lab } from '../helpers/netns.js';
import { background, udpSendCommand, until } from '../helpers/capture.js';

let lab: Lab;
let dir: string;
beforeEach(() => {
  lab = makeLab();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-sampler-'));
  ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns: lab.server }));
});
afterEach(() => {
  lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const sampler = (args: string[]) => run(BIN('xdp-sampler'), args, { netns: lab.server });
const PORT = 9999;
const payloads = (n: number, size = 100) =>
  Array.from({ length: n }, (_, i) => Buffer.from(Array.from({ length: size }, (_, j) => (i * 31 + j * 7) % 256)));
/** Ethernet 14 + IPv4 20 + UDP 8. */
const HEADERS = 42;

function send(data: Buffer[]): void {
  const [cmd, ...args] = udpSendCommand(lab.serverIp, PORT, data);
  sh(cmd, args, lab.client);
}

/** Start a capture into `file`; resolves once its header is on disk. */
async function startCapture(file: string, extra: string[] = []) {
  const bg = background(lab.server, [BIN('xdp-sampler'), '--capture', '--interface', lab.serverIf, '--output', file, ...extra]);
  await until(() => existsSync(file) && statSync(file).size > 0 || bg.child.exitCode !== null, 'the capture file header');
  return bg;
}

function tshark(file: string, fields: string[]): string[][] {
  return sh('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])])
    .trim().split('\n').filter(Boolean).map((l) => l.split('|'));
}

function tcpdumpLines(file: string): string[] {
  return sh('tcpdump', ['-r', file, '-nn']).trim().split('\n').filter(Boolean);
}

/** Each packet's captured bytes, in hex, from `tcpdump -xx`. */
function tcpdumpHex(file: string): string[] {
  const packets: string[] = [];
  for (const line of sh('tcpdump', ['-r', file, '-nn', '-xx']).split('\n')) {
    const m = /^\s+0x([0-9a-f]{4}):\s+(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0000') packets.push('');
    packets[packets.length - 1] += m[2].replace(/\s+/g, '');
  }
  return packets;
}

function statusJson() {
  return JSON.parse(ok(sampler(['--status', '--interface', lab.serverIf, '--json'])))[lab.serverIf];
}

describe('xdp-sampler', () => {
  it('captures every packet at rate 1 to pcapng: tshark and tcpdump see the exact lengths and bytes sent', async () => {
    expect(ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1', '--snaplen', '65535']))).toMatch(
      new RegExp(`^Attached xdp_sampler \\(id \\d+\\) to slot 1 of ${lab.serverIf}\\.\n$`),
    );
    const file = join(dir, 'all.pcapng');
    const cap = await startCapture(file, ['--count', '5']);
    const sent = payloads(5);
    const start = Date.now() / 1000;
    send(sent);
    const end = Date.now() / 1000;
    expect(await cap.exited).toBe(0);
    // Wall-clock timestamps (from the kernel's boot-time clock), in order.
    const times = tshark(file, ['frame.time_epoch']).map(([t]) => Number(t));
    expect(times).toEqual([...times].sort());
    for (const t of times) expect(t >= start - 0.01 && t <= end + 0.01).toBe(true);
    expect(cap.stderr()).toBe(`xdp-sampler: 5 samples written to ${file}, 0 lost in the kernel (ring buffer full)\n`);

    const rows = tshark(file, ['frame.interface_name', 'frame.len', 'frame.cap_len', 'ip.src', 'udp.dstport', 'udp.payload', 'frame.comment']);
    expect(rows).toEqual(sent.map((p) => [lab.serverIf, String(HEADERS + p.length), String(HEADERS + p.length), lab.clientIp, String(PORT), p.toString('hex'), '']));
    const lines = tcpdumpLines(file);
    expect(lines).toHaveLength(5);
    for (const l of lines) expect(l).toMatch(new RegExp(`IP ${lab.clientIp.replace(/\./g, '\\.')}\\.\\d+ > ${lab.serverIp.replace(/\./g, '\\.')}\\.${PORT}: UDP, length 100$`));

    const s = statusJson();
    expect(s).toMatchObject({ sampler_loaded: true, slot: 1, rate: 1, verdict_rate: 0, snaplen: 65535, captured_max: 9216 });
    expect(s.samples).toEqual({ packets: 5, verdicts: 0, lost: 0 });
  });

  it('writes only samples taken after it started, not what earlier traffic left in the ring; -o x.pcap is classic pcap', async () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1']));
    send(payloads(4, 60)); // in the ring, read by no one
    const file = join(dir, 'fresh.pcap');
    const cap = await startCapture(file, ['--count', '2']);
    const fresh = payloads(2, 70);
    send(fresh);
    expect(await cap.exited).toBe(0);
    // Classic pcap: the magic a1b2c3d4 (microseconds), little-endian.
    expect(readFileSync(file).subarray(0, 4).toString('hex')).toBe('d4c3b2a1');
    expect(tshark(file, ['frame.len', 'udp.payload'])).toEqual(fresh.map((p) => [String(HEADERS + 70), p.toString('hex')]));
  });

  it('captures in skb (generic) mode too', async () => {
    ok(xdpRoot(['--detach', '--interface', lab.serverIf], { netns: lab.server }));
    ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'skb'], { netns: lab.server }));
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1']));
    const file = join(dir, 'skb.pcapng');
    const cap = await startCapture(file, ['--count', '3']);
    const sent = payloads(3, 50);
    send(sent);
    expect(await cap.exited).toBe(0);
    expect(tshark(file, ['frame.len', 'udp.payload'])).toEqual(sent.map((p) => [String(HEADERS + 50), p.toString('hex')]));
  });

  it('truncates to snaplen and keeps the original length; writes classic pcap that tcpdump and tshark read', async () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1', '--snaplen', '60']));
    const file = join(dir, 'cut.pcap');
    const cap = await startCapture(file, ['--count', '3', '--format', 'pcap']);
    const sent = payloads(3, 500);
    send(sent);
    expect(await cap.exited).toBe(0);
    const rows = tshark(file, ['frame.len', 'frame.cap_len', 'frame.comment']);
    expect(rows).toEqual(sent.map(() => [String(HEADERS + 500), '60', '']));
    // tcpdump's hex dump of each packet: the 18 payload bytes after the headers.
    expect(tcpdumpHex(file).map((h) => h.slice(2 * HEADERS))).toEqual(sent.map((p) => p.subarray(0, 18).toString('hex')));
    expect(sh('tcpdump', ['-r', file, '-nn']).trim().split('\n')).toHaveLength(3);
  });

  it('shows the slot, program and action of a packet dropped in a later slot as a pcapng comment', async () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '0', '--verdict-rate', '1']));
    ok(xdpRoot(['--load', '--interface', lab.serverIf, '--slot', '5', '--object', BPF('xdp_fixtures.o'), '--program', 'xdp_drop_test'], { netns: lab.server }));
    const file = join(dir, 'drop.pcapng');
    const cap = await startCapture(file, ['--count', '2']);
    const sent = payloads(2, 40);
    send(sent);
    expect(await cap.exited).toBe(0);
    expect(tshark(file, ['frame.len', 'udp.payload', 'frame.comment'])).toEqual(
      sent.map((p) => [String(HEADERS + 40), p.toString('hex'), 'slot=5 prog=xdp_drop_test action=XDP_DROP']),
    );
    expect(statusJson().samples).toEqual({ packets: 0, verdicts: 2, lost: 0 });
    const root = JSON.parse(ok(xdpRoot(['--status', '--interface', lab.serverIf, '--json'], { netns: lab.server })))[lab.serverIf];
    expect(root.subprograms[5].statistics.XDP_DROP).toBe(2);
    expect(root.subprograms[1].statistics.XDP_PASS).toBe(2);
  });

  it('streams to stdout into tcpdump -r -', async () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1']));
    const pipeline = `${BIN('xdp-sampler')} --capture -i ${lab.serverIf} -o - --count 4 | tcpdump -r - -nn`;
    const bg = background(lab.server, ['bash', '-o', 'pipefail', '-c', pipeline]);
    // tcpdump names the link type once it has read the file header.
    await until(() => bg.stderr().includes('link-type EN10MB'), 'tcpdump to read the stream header');
    send(payloads(4, 64));
    expect(await bg.exited).toBe(0);
    const lines = bg.stdout().trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l).toMatch(/UDP, length 64$/);
    expect(bg.stderr()).toContain('xdp-sampler: 4 samples written to stdout, 0 lost in the kernel (ring buffer full)');
  });

  it('ends cleanly when the reader of stdout goes away', async () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1']));
    const pipeline = `${BIN('xdp-sampler')} --capture -i ${lab.serverIf} -o - --duration 30 | tcpdump -r - -nn -c 2`;
    const bg = background(lab.server, ['bash', '-o', 'pipefail', '-c', pipeline]);
    await until(() => bg.stderr().includes('link-type EN10MB'), 'tcpdump to read the stream header');
    send(payloads(2, 30));
    await until(() => bg.stdout().trim().split('\n').length === 2, 'tcpdump to print two packets');
    // tcpdump has exited: the next samples meet a closed pipe.
    const start = Date.now();
    send(payloads(2, 30));
    expect(await bg.exited).toBe(0);
    expect(Date.now() - start).toBeLessThan(10_000);
    expect(bg.stderr()).toMatch(/xdp-sampler: \d+ samples written to stdout, 0 lost in the kernel \(ring buffer full\)\n$/);
  });

  it('stops on SIGINT with the file complete', async () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1']));
    const file = join(dir, 'int.pcapng');
    const cap = await startCapture(file);
    send(payloads(3, 20));
    await until(() => statusJson().samples.packets === 3, 'three samples in the kernel');
    cap.child.kill('SIGINT');
    expect(await cap.exited).toBe(0);
    expect(cap.stderr()).toBe(`xdp-sampler: 3 samples written to ${file}, 0 lost in the kernel (ring buffer full)\n`);
    expect(tshark(file, ['frame.len'])).toEqual([['62'], ['62'], ['62']]);
  });

  it('changes the rate without reloading and stops sampling at rate 0; detach takes it out', () => {
    ok(sampler(['--attach', '--interface', lab.serverIf, '--rate', '1', '--verdict-rate', '7']));
    const before = statusJson();
    expect(ok(sampler(['--set-rate', '0', '--interface', lab.serverIf]))).toBe(`Sampling off on ${lab.serverIf}.\n`);
    const after = statusJson();
    expect(after).toMatchObject({ id: before.id, slot: 1, rate: 0, verdict_rate: 7 });
    send(payloads(3));
    expect(statusJson().samples.packets).toBe(0);
    expect(ok(sampler(['--set-rate', '1', '--interface', lab.serverIf]))).toBe(`Sampling 1 in 1 packets on ${lab.serverIf}.\n`);
    send(payloads(2));
    expect(statusJson()).toMatchObject({ id: before.id, rate: 1 });
    expect(statusJson().samples.packets).toBe(2);

    expect(ok(sampler(['--detach', '--interface', lab.serverIf]))).toBe(`Detached xdp_sampler from ${lab.serverIf}.\n`);
    expect(statusJson()).toMatchObject({ sampler_loaded: false, slot: null, rate: null, verdict_rate: 0 });
    const root = JSON.parse(ok(xdpRoot(['--status', '--interface', lab.serverIf, '--json'], { netns: lab.server })))[lab.serverIf];
    expect(root.subprograms[1].prog_loaded).toBe(false);
    expect(existsSync(`${ifPinDir(lab.server, lab.serverIf)}/sampler`)).toBe(false);
    expect(ok(sampler(['--detach', '--interface', lab.serverIf]))).toBe(`xdp_sampler was not attached to ${lab.serverIf}; nothing to detach.\n`);
  });

  it('keeps its settings when attached again without flags, and pins the sample maps with the root', () => {
    for (const pin of ['samples', 'sampling', 'sample_stats']) expect(existsSync(`${ifPinDir(lab.server, lab.serverIf)}/${pin}`)).toBe(true);
    ok(sampler(['--attach', '--interface', lab.serverIf, '--slot', '3', '--rate', '50', '--verdict-rate', '9', '--snaplen', '128']));
    expect(ok(sampler(['--attach', '--interface', lab.serverIf]))).toBe(`xdp_sampler already in slot 3 of ${lab.serverIf}; options applied.\n`);
    expect(statusJson()).toMatchObject({ slot: 3, rate: 50, verdict_rate: 9, snaplen: 128 });
    const table = ok(sampler(['--status', '--interface', lab.serverIf]));
    expect(table).toMatch(new RegExp(`${lab.serverIf} .* 3 .* 1/50 .* 1/9 .* 128 .* 0 .* 0 .* 0`));
  });

  it('captures two interfaces into one pcapng with an interface block each, packets named by interface', async () => {
    // A second link between the lab's namespaces.
    const [a, b] = [`xa${lab.tag}`, `xb${lab.tag}`];
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      ip('link', 'add', a, 'netns', lab.server, 'type', 'veth', 'peer', 'name', b, 'netns', lab.client);
      ip('-n', lab.server, 'addr', 'add', '10.202.0.2/24', 'dev', a);
      ip('-n', lab.client, 'addr', 'add', '10.202.0.1/24', 'dev', b);
      ip('-n', lab.server, 'link', 'set', a, 'up');
      ip('-n', lab.client, 'link', 'set', b, 'up');
      const macA = JSON.parse(sh('ip', ['-j', 'link', 'show', a], lab.server))[0].address;
      ip('-n', lab.client, 'neigh', 'replace', '10.202.0.2', 'lladdr', macA, 'dev', b, 'nud', 'permanent');
      ok(xdpRoot(['--attach', '--interface', a, '--mode', 'native'], { netns: lab.server }));
      ok(sampler(['--attach', '--interface', `${lab.serverIf},${a}`, '--rate', '1']));

      const file = join(dir, 'two.pcapng');
      const bg = background(lab.server, [BIN('xdp-sampler'), '--capture', '-i', `${lab.serverIf},${a}`, '-o', file, '--count', '3']);
      await until(() => existsSync(file) && statSync(file).size > 0, 'the capture file header');
      send(payloads(2, 10));
      const [cmd, ...args] = udpSendCommand('10.202.0.2', PORT, payloads(1, 11));
      sh(cmd, args, lab.client);
      expect(await bg.exited).toBe(0);
      expect(tshark(file, ['frame.interface_id', 'frame.interface_name', 'udp.length'])).toEqual([
        ['0', lab.serverIf, '18'], ['0', lab.serverIf, '18'], ['1', a, '19'],
      ]);
    } finally {
      xdpRoot(['--detach', '--interface', a], { netns: lab.server });
    }
  });
});
