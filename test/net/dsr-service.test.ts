// xdp-decap run beside xdp-root run, as their units run them: the
// decapsulator in its slot with the section's tunnels (the interface's own
// address by default), real IPIP and GUE packets taken apart (the kernel
// answers the pings inside them from the VIP on lo), its counters on the
// root service's Prometheus endpoint, scraped over HTTP and linted by
// promtool; SIGHUP follows the section, SIGTERM takes it out. And
// xdp-lb run refusing a dsr-l2 backend that is no neighbour.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { ifPinDir, makeLab, type Lab } from '../helpers/netns.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from '../helpers/service.js';

let lab: Lab;
let dir: string;
let config: string;
const daemons: Array<{ d: Daemon; n: NotifySocket }> = [];
const VIP = '10.201.0.100';
const METRICS = '127.0.0.1:9624';

beforeEach(() => {
  lab = makeLab();
  dir = mkdtempSync(join(tmpdir(), 'xdplb-dsr-svc-'));
  config = join(dir, 'xdplb.json');
  sh('ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo'], lab.server);
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

async function start(command: string, ready = true) {
  const n = new NotifySocket();
  await n.start();
  const d = startDaemon([...netnsWithSys(lab.server), BIN(command), 'run', '--config', config], { NOTIFY_SOCKET: n.path });
  daemons.push({ d, n });
  if (ready) await n.waitFor(/^READY=1$/);
  return { d, n };
}

const writeConfig = (sections: object) => writeFileSync(config, JSON.stringify({ interfaces: [lab.serverIf], mode: 'native', metrics: {}, ...sections }));
const rootStatus = () => JSON.parse(ok(xdpRoot(['--status', '--interface', lab.serverIf, '--json'], { netns: lab.server })))[lab.serverIf];
const decapStatus = () => JSON.parse(ok(run(BIN('xdp-decap'), ['--status', '--json'], { netns: lab.server })));

/** From the client: `n` pings to the VIP inside IPIP and `n` inside GUE
 *  (variant 1, UDP to 6080) to the server's address, sent through raw and
 *  UDP sockets (no tunnel module); the echo replies that came back. */
function tunnelPings(n: number): { ipip: number; gue: number } {
  const script = `
import socket, struct, select, time
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ping(seq):
    icmp = struct.pack('!BBHHH', 8, 0, 0, 0x7777, seq) + b'xdplb tunnel ping'
    icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, socket.inet_aton('${lab.clientIp}'), socket.inet_aton('${VIP}'))
    return ip[:10] + struct.pack('!H', csum(ip)) + ip[12:] + icmp
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
replies = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
got = {'ipip': set(), 'gue': set()}
for i in range(${n}):
    raw.sendto(ping(i), ('${lab.serverIp}', 0))
    udp.sendto(ping(1000 + i), ('${lab.serverIp}', 6080))
end = time.time() + 3
while time.time() < end and len(got['ipip']) + len(got['gue']) < ${2 * n}:
    if not select.select([replies], [], [], 0.2)[0]: continue
    b, a = replies.recvfrom(2048)
    t, ident, seq = b[20], struct.unpack('!H', b[24:26])[0], struct.unpack('!H', b[26:28])[0]
    if a[0] == '${VIP}' and t == 0 and ident == 0x7777: got['gue' if seq >= 1000 else 'ipip'].add(seq)
print(len(got['ipip']), len(got['gue']))
`;
  const [ipip, gue] = sh('python3', ['-c', script], lab.client).trim().split(' ').map(Number);
  return { ipip, gue };
}

/** Samples of a metric family in an exposition, by their labels as written. */
function samples(body: string, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of body.split('\n')) {
    const m = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

describe('xdp-decap run', () => {
  it('takes tunnel packets to the interface\'s own address, shows its counters on the metrics endpoint, follows SIGHUP, leaves on SIGTERM', async () => {
    writeConfig({ decap: { enabled: true } });
    const root = await start('xdp-root');
    const decap = await start('xdp-decap');
    expect(await decap.n.waitFor(/^STATUS=/)).toBe(`STATUS=${lab.serverIf}: tunnel ${lab.serverIp}, GUE port 6080`);
    expect(decap.d.stderr).toContain(`xdp-decap: ${lab.serverIf}: xdp_decap in slot 6, tunnel ${lab.serverIp}, GUE port 6080`);
    expect(rootStatus().subprograms[6]).toMatchObject({ prog_loaded: true, name: 'xdp_decap' });
    expect(root.d.stderr).toContain(`xdp-root: serving metrics on http://${METRICS}/metrics`);

    expect(tunnelPings(5)).toEqual({ ipip: 5, gue: 5 });
    const status = decapStatus()[lab.serverIf];
    // Frames as they arrived: Ethernet, the outer IPv4 header, [UDP,] the
    // inner 45-byte ping. No stateless VIP's TCP: nothing chained.
    expect(status.stats).toEqual({ ipip4: 5, ipip6: 0, gue4: 5, gue6: 0, bytes: 5 * (14 + 20 + 45) + 5 * (14 + 20 + 8 + 45), not_ours: 0, malformed: 0, delivered: 0, chained: 0, unowned: 0 });

    const body = sh('curl', ['-s', `http://${METRICS}/metrics`], lab.server);
    const i = `interface="${lab.serverIf}"`;
    expect(samples(body, 'xdplb_decap_packets_total')).toEqual(Object.fromEntries(
      Object.entries(status.stats).filter(([k]) => k !== 'bytes').map(([k, v]) => [`${i},counter="${k}"`, String(v)]),
    ));
    expect(samples(body, 'xdplb_decap_bytes_total')).toEqual({ [`${i},counter="decapsulated"`]: String(status.stats.bytes) });
    expect(samples(body, 'xdplb_decap_tunnel_info')).toEqual({ [`${i},tunnel_ipv4="${lab.serverIp}",tunnel_ipv6="",gue_port="6080"`]: '1' });
    expect(body).toContain('# TYPE xdplb_decap_packets_total counter');
    expect(samples(body, 'xdplb_scrape_collector_success')).toMatchObject({ 'collector="decap"': '1' });
    expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });

    // The section says no GUE and another address: one map update.
    writeConfig({ decap: { enabled: true, tunnel_ipv4: '10.201.0.7', gue_port: 0 } });
    const mark = decap.n.lines.length;
    decap.d.proc.kill('SIGHUP');
    await decap.n.waitFor(/^READY=1$/, mark);
    expect(await decap.n.waitFor(/^STATUS=/, mark)).toBe(`STATUS=${lab.serverIf}: tunnel 10.201.0.7, GUE off`);
    expect(decapStatus()[lab.serverIf]).toMatchObject({ id: status.id, configuration: { tunnel_ipv4: '10.201.0.7', tunnel_ipv6: null, gue_port: 0 } });
    // IPIP to the server's address is no longer ours; GUE is plain UDP.
    expect(tunnelPings(2)).toEqual({ ipip: 0, gue: 0 });
    expect(decapStatus()[lab.serverIf].stats).toMatchObject({ ipip4: 5, gue4: 5, not_ours: 2 });

    decap.d.proc.kill('SIGTERM');
    expect(await decap.d.exited).toBe(0);
    expect(rootStatus().subprograms[6].prog_loaded).toBe(false);
    expect(existsSync(`${ifPinDir(lab.server, lab.serverIf)}/decap`)).toBe(false);
    expect(rootStatus().root_loaded).toBe(true);
  });
});

describe('xdp-lb run', () => {
  it('refuses to start with a dsr-l2 backend that is no neighbour, naming it, and changes nothing', async () => {
    writeConfig({
      lb: {
        enabled: true,
        vips: [{ address: VIP, port: 80, forwarding: 'dsr-l2', backends: [{ address: lab.clientIp }, { address: '10.9.9.9' }] }],
      },
    });
    await start('xdp-root');
    const before = ok(xdpRoot(['--status', '--json'], { netns: lab.server })) + ok(run(BIN('xdp-lb'), ['--status', '--json'], { netns: lab.server }));
    const lb = await start('xdp-lb', false);
    expect(await lb.d.exited).toBe(2);
    expect(lb.d.stderr.join('\n')).toContain(
      'vips[0].backends[1].address: forwarding "dsr-l2" only changes the destination MAC, so a backend must be on a subnet this network namespace reaches without a router (10.201.0.0/24), got \'10.9.9.9\'',
    );
    expect(ok(xdpRoot(['--status', '--json'], { netns: lab.server })) + ok(run(BIN('xdp-lb'), ['--status', '--json'], { netns: lab.server }))).toBe(before);
  });
});
