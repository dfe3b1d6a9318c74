// The Debian package on a booted systemd, driven as an operator would:
// install, systemctl start/reload/kill/stop, a bad config, removal.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_DIR, run, xdpRoot } from '../helpers/cli.js';
import { nsPinDir, uniqueTag } from '../helpers/netns.js';
import { boot, debootstrap, installDeb, removeRootfs, type Container } from '../helpers/container.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';
import { ABI_VERSION, VERSION } from '../../src/version.js';
import { SUBPROGRAMS } from '../../src/programs/index.js';

const tag = uniqueTag();
const rootfs = `/var/tmp/xdplb-system-${tag}`;
const netns = `xsys-${tag}`;
const client = `xsyc-${tag}`;
const dev = `xsA${tag}`;
// The container's /sys/fs/bpf: a directory of the host's bpffs.
const bpffs = `/sys/fs/bpf/xdplb-system-${tag}`;
const pinRoot = `${bpffs}/xdplb`;
let deb: string;
let box: Container;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'ignore' });

/** An echo server on port 8000. */
const ECHO_SERVER = `
import socketserver
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(4096)
            if not d:
                return
            self.request.sendall(d)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(('0.0.0.0', 8000), Echo).serve_forever()
`;

/** 20 connections to the VIP kept busy (an echo every 100 ms each) until
 *  SIGTERM; then how many broke (reset, closed or silent for 5 s). */
const HELD_CONNECTIONS = `
import json, select, signal, socket, sys, time
conns = []
deadline = time.time() + 15
while len(conns) < 20:
    try:
        conns.append(socket.create_connection(('10.203.0.100', 8000), timeout=5))
    except ConnectionRefusedError:
        # The echo server is starting: try again.
        if time.time() > deadline:
            raise
        time.sleep(0.1)
print('READY', flush=True)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
broken, exchanges, errors = set(), 0, []
while not stop:
    for i, s in enumerate(conns):
        if i in broken or stop:
            continue
        try:
            s.sendall(b'ping %d' % exchanges)
            s.settimeout(5)
            if s.recv(64) == b'':
                raise ConnectionError('closed')
            exchanges += 1
        except Exception as e:
            broken.add(i)
            errors.append(repr(e))
    time.sleep(0.1)
print(json.dumps({'connections': len(conns), 'broken': len(broken), 'exchanges': exchanges, 'errors': errors}), flush=True)
`;
const inBox = (...args: string[]) => box.exec(args);
const systemctl = (...args: string[]) => inBox('systemctl', ...args);
/** Status as the host sees it, with the checkout's own xdp-root as witness. */
const hostStatus = () =>
  JSON.parse(xdpRoot(['--status', '--interface', dev, '--json'], { netns, env: { XDPLB_PIN_ROOT: pinRoot } }).stdout)[dev];
/** The interface's pins, where the container's xdplb keeps them. */
const pinned = () => {
  const [link] = JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'link', 'show', dev], { encoding: 'utf8' }));
  return existsSync(`${nsPinDir(netns, pinRoot)}/if-${link.ifindex}`);
};
const attachedProg = () => {
  const [link] = JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'link', 'show', dev], { encoding: 'utf8' }));
  return link.xdp ?? null;
};
const ping = () => run('ping', ['-n', '-q', '-c', '3', '-i', '0.1', '-W', '1', '10.203.0.2'], { netns: client }).stdout;
async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  execFileSync('bash', [`${ROOT_DIR}/scripts/build-deb.sh`], { stdio: 'ignore', timeout: 600_000 });
  deb = `${ROOT_DIR}/build/deb/${readdirSync(`${ROOT_DIR}/build/deb`).find((f) => f.endsWith('.deb'))}`;
  debootstrap(rootfs, ['systemd', 'systemd-sysv', 'dbus', 'iproute2']);
  installDeb(rootfs, deb);
  ip('netns', 'add', netns);
  ip('netns', 'add', client);
  ip('link', 'add', dev, 'netns', netns, 'type', 'veth', 'peer', 'name', `xsB${tag}`, 'netns', client);
  ip('-n', netns, 'addr', 'add', '10.203.0.2/24', 'dev', dev);
  ip('-n', client, 'addr', 'add', '10.203.0.1/24', 'dev', `xsB${tag}`);
  for (const [ns, d] of [[netns, dev], [client, `xsB${tag}`]]) {
    ip('-n', ns, 'link', 'set', d, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  // The default route is what "interfaces": "auto" follows.
  ip('-n', netns, 'route', 'add', 'default', 'via', '10.203.0.1');
  // What the load balancer needs of its namespace (see README), and of the
  // client on a veth: XDP on the peer for XDP_TX, complete checksums.
  execFileSync('nsenter', [`--net=/run/netns/${netns}`, 'sysctl', '-q', '-w', 'net.ipv4.conf.all.forwarding=1',
    `net.ipv4.conf.${dev}.forwarding=1`, `net.ipv4.conf.${dev}.accept_local=1`]);
  ip('-n', client, 'link', 'set', 'dev', `xsB${tag}`, 'xdpdrv', 'object', `${ROOT_DIR}/build/bpf/xdp_plain.o`, 'program', 'xdp_plain_pass');
  execFileSync('nsenter', [`--net=/run/netns/${client}`, 'ethtool', '-K', `xsB${tag}`, 'tx', 'off'], { stdio: 'ignore' });
  mkdirSync(bpffs, { mode: 0o700 });
  box = await boot(rootfs, `xdplb${tag}`, netns, bpffs);
}, 900_000);

afterAll(async () => {
  await box?.stop();
  for (const ns of [netns, client]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not created
    }
  }
  rmSync(bpffs, { recursive: true, force: true });
  removeRootfs(rootfs);
}, 120_000);

describe('the xdplb package on Debian 13 with systemd', () => {
  it('lintian finds no errors', () => {
    const r = run('lintian', ['--no-tag-display-limit', deb]);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('E:'))).toEqual([]);
  });

  it('installing started and attached nothing', () => {
    expect(systemctl('is-active', 'xdplb-root').out.trim()).toBe('inactive');
    expect(systemctl('is-enabled', 'xdplb-root').out.trim()).toBe('disabled');
    expect(attachedProg()).toBeNull();
    expect(inBox('test', '-f', '/usr/lib/xdplb/bpf/xdp_root.o').code).toBe(0);
    expect(inBox('dpkg-query', '-W', '-f=${Conffiles}', 'xdplb').out).toMatch(/\/etc\/xdplb\/xdplb\.json/);
  });

  it('systemd-analyze verify prints nothing for the units', () => {
    const units = ['root', ...readdirSync(`${ROOT_DIR}/build/systemd`).map((f) => f.replace(/^xdplb-|\.service$/g, ''))]
      .map((u) => `/usr/lib/systemd/system/xdplb-${u}.service`);
    // The root's and one per subprogram of the registry.
    expect(units.sort()).toEqual(['root', ...SUBPROGRAMS.map((p) => p.name)].map((u) => `/usr/lib/systemd/system/xdplb-${u}.service`).sort());
    expect(inBox('systemd-analyze', 'verify', ...units)).toEqual({ code: 0, out: '' });
  });

  it('systemctl start attaches the root to the default-route interface and says so in its status', () => {
    expect(systemctl('start', 'xdplb-root').code).toBe(0);
    expect(systemctl('show', '-P', 'StatusText', 'xdplb-root').out.trim()).toBe(`${dev} (native): all slots empty`);
    const s = JSON.parse(inBox('xdp-root', '--status', '--interface', dev, '--json').out)[dev];
    expect(s).toMatchObject({ root_loaded: true, mode: 'native' });
    expect(hostStatus().root_id).toBe(s.root_id);
    expect(attachedProg()?.prog?.id ?? attachedProg()?.attached?.[0]?.prog?.id).toBe(s.root_id);
    expect(ping()).toMatch(/3 received/);
  });

  it('the filter, sampler and load balancer units run in their slots and follow a reload', async () => {
    const lb = {
      enabled: true,
      nat: { source_ipv4: '10.203.0.2' },
      vips: [{ address: '10.203.0.100', port: 8000, protocol: 'tcp', backends: [{ address: '10.203.0.1' }] }],
    };
    const config = JSON.stringify({
      interfaces: 'auto',
      filter: { enabled: true, drop: [{ prefix: '10.203.0.1/32', tag: 'client' }] },
      sampler: { enabled: true, rate: 1 },
      lb,
    });
    box.exec(['sh', '-c', `cat > /etc/xdplb/xdplb.json`], { input: config });
    expect(systemctl('start', 'xdplb-filter', 'xdplb-sampler', 'xdplb-lb').code).toBe(0);
    expect(systemctl('show', '-P', 'StatusText', 'xdplb-filter').out.trim()).toBe(`${dev}: frags_drop off, ptb_max_pps 0, 1 prefixes dropped`);
    expect(systemctl('show', '-P', 'StatusText', 'xdplb-sampler').out.trim()).toBe(`${dev}: packets 1 in 1, verdicts off, snaplen 256`);
    expect(systemctl('show', '-P', 'StatusText', 'xdplb-lb').out.trim()).toMatch(new RegExp(`^${dev}: 1 VIPs, 1 backends, 0/\\d+ connections$`));
    const s = hostStatus();
    expect([1, 2, 7].map((slot) => s.subprograms[slot].name)).toEqual(['xdp_sampler', 'xdp_filter', 'xdp_lb']);
    expect(ping()).toMatch(/ 0 received/);

    box.exec(['sh', '-c', `cat > /etc/xdplb/xdplb.json`], {
      input: JSON.stringify({ interfaces: 'auto', filter: { enabled: true }, sampler: { enabled: true, rate: 1 }, lb }),
    });
    expect(systemctl('reload', 'xdplb-filter').code).toBe(0);
    await until('the filter to reload', () => /0 prefixes dropped/.test(systemctl('show', '-P', 'StatusText', 'xdplb-filter').out));
    expect(ping()).toMatch(/3 received/);
    expect(hostStatus().subprograms[2].id).toBe(s.subprograms[2].id);
  });

  it('the root unit serves Prometheus metrics once its config asks for them, and promtool finds no problem in them', async () => {
    const config = JSON.parse(inBox('cat', '/etc/xdplb/xdplb.json').out);
    box.exec(['sh', '-c', 'cat > /etc/xdplb/xdplb.json'], { input: JSON.stringify({ ...config, metrics: { listen: '127.0.0.1:9624' } }) });
    expect(systemctl('reload', 'xdplb-root').code).toBe(0);
    // Scraped from the host, in the container's network namespace.
    let body = '';
    await until('the metrics endpoint', () => {
      const r = run('curl', ['-s', '-f', 'http://127.0.0.1:9624/metrics'], { netns });
      body = r.stdout;
      return r.code === 0;
    });
    expect(inBox('journalctl', '-u', 'xdplb-root', '--no-pager', '-o', 'cat').out).toContain('serving metrics on http://127.0.0.1:9624/metrics');
    expect(body).toContain(`xdplb_build_info{version="${VERSION}",abi="${ABI_VERSION}"} 1\n`);
    expect(body).toContain(`xdplb_root_attached{interface="${dev}",mode="native"} 1\n`);
    for (const [slot, program] of [[1, 'xdp_sampler'], [2, 'xdp_filter'], [7, 'xdp_lb']]) {
      expect(body).toMatch(new RegExp(`^xdplb_slot_packets_total\\{interface="${dev}",slot="${slot}",program="${program}",action="XDP_PASS"\\} \\d+$`, 'm'));
    }
    expect(body).toMatch(/^xdplb_lb_vip_connections_total\{vip="tcp:10\.203\.0\.100:8000"\} \d+$/m);
    expect(body).toMatch(new RegExp(`^xdplb_sampler_rate\\{interface="${dev}"\\} 1$`, 'm'));
    expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });
  });

  it('systemctl reload keeps the data plane as it is', async () => {
    const before = hostStatus().root_id;
    expect(systemctl('reload', 'xdplb-root').code).toBe(0);
    await until('reload to finish', () => systemctl('is-active', 'xdplb-root').out.trim() === 'active');
    expect(hostStatus().root_id).toBe(before);
    expect(inBox('journalctl', '-u', 'xdplb-root', '--no-pager', '-o', 'cat').out).toMatch(/reloaded: nothing changed/);
  });

  it('systemctl kill -s KILL keeps the data plane, and the restart adopts it', async () => {
    const before = hostStatus();
    expect(systemctl('kill', '-s', 'KILL', 'xdplb-root').code).toBe(0);
    expect(hostStatus()).toMatchObject({ root_loaded: true, root_id: before.root_id });
    expect(hostStatus().subprograms[1].id).toBe(before.subprograms[1].id);
    expect(ping()).toMatch(/3 received/);
    await until('the restart', () => /adopted the root on/.test(inBox('journalctl', '-u', 'xdplb-root', '--no-pager', '-o', 'cat').out));
    await until('active again', () => systemctl('is-active', 'xdplb-root').out.trim() === 'active');
    expect(hostStatus().root_id).toBe(before.root_id);
    // The subprograms' units were not stopped: their programs never left.
    expect(systemctl('is-active', 'xdplb-filter', 'xdplb-sampler', 'xdplb-lb').out.trim().split('\n')).toEqual(['active', 'active', 'active']);
    expect(hostStatus().subprograms[2].id).toBe(before.subprograms[2].id);
  });

  it('systemctl restart of the balancer and of the root resets no connection: the data plane stays for the next start', async () => {
    // The client talks to the VIP; the balancer sends it to the client's
    // own echo server (one-armed NAT), so every connection crosses xdp_lb.
    const mac = JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'link', 'show', dev], { encoding: 'utf8' }))[0].address;
    ip('-n', client, 'neigh', 'replace', '10.203.0.100', 'lladdr', mac, 'dev', `xsB${tag}`, 'nud', 'permanent');
    const echo = spawn('nsenter', [`--net=/run/netns/${client}`, 'python3', '-c', ECHO_SERVER], { stdio: 'ignore' });
    const held = spawn('nsenter', [`--net=/run/netns/${client}`, 'python3', '-c', HELD_CONNECTIONS], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      held.stdout!.on('data', (d) => (out += d));
      await until('20 connections through the VIP', () => out.includes('READY'), 20_000);
      const before = hostStatus();
      expect(systemctl('restart', 'xdplb-lb').code).toBe(0);
      await until('the balancer back', () => systemctl('is-active', 'xdplb-lb').out.trim() === 'active');
      expect(inBox('journalctl', '-u', 'xdplb-lb', '--no-pager', '-o', 'cat').out).toMatch(/restarting on SIGTERM: the data plane stays for the next start/);
      expect(hostStatus().subprograms[7].id).toBe(before.subprograms[7].id);
      await new Promise((r) => setTimeout(r, 1000));
      expect(systemctl('restart', 'xdplb-root').code).toBe(0);
      await until('the root back', () => systemctl('is-active', 'xdplb-root', 'xdplb-lb').out.trim() === 'active\nactive');
      expect(hostStatus().root_id).toBe(before.root_id);
      await new Promise((r) => setTimeout(r, 1000));
      held.kill('SIGTERM');
      await new Promise((r) => held.once('exit', r));
      const result = JSON.parse(out.slice(out.indexOf('{')));
      expect(result).toMatchObject({ connections: 20, broken: 0 });
      expect(result.exchanges).toBeGreaterThan(100);
    } finally {
      held.kill('SIGKILL');
      echo.kill('SIGKILL');
    }
  });

  it('the balancer unit drives the packaged BIRD with the shipped example: its VIP in BIRD\'s routes while it serves it', async () => {
    // bird2 came as a Recommends; its unit runs BIRD as bird:bird.
    expect(inBox('dpkg-query', '-W', '-f=${Status}', 'bird2').out).toBe('install ok installed');
    expect(systemctl('show', '-P', 'After', 'xdplb-lb').out).toMatch(/\bbird\.service\b/);
    expect(systemctl('show', '-P', 'Wants', 'xdplb-lb').out).toMatch(/\bbird\.service\b/);
    expect(systemctl('show', '-P', 'Requires', 'xdplb-lb').out).not.toMatch(/bird/);
    expect(inBox('cp', '/usr/share/doc/xdplb/examples/xdplb-balancer.conf', '/etc/bird/bird.conf').code).toBe(0);
    expect(systemctl('restart', 'bird').code).toBe(0);
    await until('BIRD\'s socket', () => inBox('test', '-S', '/run/bird/bird.ctl').code === 0);
    const config = JSON.parse(inBox('cat', '/etc/xdplb/xdplb.json').out);
    config.lb.bgp = { peers: ['router1'] };
    box.exec(['sh', '-c', 'cat > /etc/xdplb/xdplb.json'], { input: JSON.stringify(config) });
    expect(systemctl('reload', 'xdplb-lb').code).toBe(0);
    await until('the VIP in BIRD', () => /10\.203\.0\.100\/32 +blackhole/.test(inBox('birdc', 'show', 'route', 'protocol', 'xdplb_vips4').out));
    expect(inBox('stat', '-c', '%a %U', '/run/bird/xdplb-vips.conf').out.trim()).toBe('644 root');
    const s = JSON.parse(inBox('xdp-lb', '--status', '--json').out);
    expect(s.vips[0]).toMatchObject({ announced: true, healthy: 1 });
    expect(s.bgp).toMatchObject({ reachable: true, error: null, accepted: ['10.203.0.100/32'] });
    // No router answers in here: the session is BIRD's to keep trying.
    expect(s.bgp.sessions).toEqual([expect.objectContaining({ name: 'router1', established: false })]);
    await until('the STATUS line', () => /, 1 of 1 VIPs announced$/.test(systemctl('show', '-P', 'StatusText', 'xdplb-lb').out.trim()));
    expect(inBox('ls', '/run/xdplb').out.trim()).toMatch(/^netns-\d+$/);
  });

  it('systemctl stop detaches everything, stops the subprogram units and leaves no pins', () => {
    expect(systemctl('is-active', 'xdplb-filter').out.trim()).toBe('active');
    expect(systemctl('stop', 'xdplb-root').code).toBe(0);
    expect(systemctl('is-active', 'xdplb-filter', 'xdplb-sampler', 'xdplb-lb').out.trim().split('\n')).toEqual(['inactive', 'inactive', 'inactive']);
    expect(attachedProg()).toBeNull();
    expect(pinned()).toBe(false);
    // The balancer withdrew its VIP before it left.
    expect(inBox('birdc', 'show', 'route', 'protocol', 'xdplb_vips4').out).not.toMatch(/10\.203\.0\.100/);
    expect(inBox('journalctl', '-u', 'xdplb-lb', '--no-pager', '-o', 'cat').out).toContain('lb: BGP: withdrew every VIP (/run/bird/xdplb-vips.conf is empty)');
  });

  it('a bad config, a missing one, invalid JSON or a foreign XDP program fails the unit with one readable line and attaches nothing', async () => {
    inBox('cp', '/etc/xdplb/xdplb.json', '/root/xdplb.json.good');
    box.exec(['sh', '-c', 'printf \'{"interfaces": ["nosuch0"]}\' > /etc/xdplb/xdplb.json']);
    expect(systemctl('start', 'xdplb-root').code).not.toBe(0);
    expect(systemctl('is-failed', 'xdplb-root').out.trim()).toBe('failed');
    expect(systemctl('status', 'xdplb-root', '--no-pager', '--full').out).toContain('xdp-root: nosuch0: no such interface');
    expect(systemctl('show', '-P', 'NRestarts', 'xdplb-root').out.trim()).toBe('0');
    expect(attachedProg()).toBeNull();
    expect(pinned()).toBe(false);

    box.exec(['sh', '-c', 'printf \'{"mode": "fast"}\' > /etc/xdplb/xdplb.json']);
    systemctl('reset-failed', 'xdplb-root');
    expect(systemctl('start', 'xdplb-root').code).not.toBe(0);
    expect(systemctl('show', '-P', 'NRestarts', 'xdplb-root').out.trim()).toBe('0');
    expect(inBox('journalctl', '-u', 'xdplb-root', '--no-pager', '-o', 'cat').out).toContain(
      'xdp-root: /etc/xdplb/xdplb.json:1:10: mode: expected "native", "skb" or "auto", got "fast"',
    );
    expect(pinned()).toBe(false);
    const failsWith = (line: string) => {
      systemctl('reset-failed', 'xdplb-root');
      expect(systemctl('start', 'xdplb-root').code).not.toBe(0);
      expect(systemctl('status', 'xdplb-root', '--no-pager', '--full').out).toContain(line);
      expect(systemctl('show', '-P', 'NRestarts', 'xdplb-root').out.trim()).toBe('0');
      expect(attachedProg()).toBeNull();
      expect(pinned()).toBe(false);
    };
    inBox('rm', '/etc/xdplb/xdplb.json');
    failsWith('xdp-root: cannot read config /etc/xdplb/xdplb.json: no such file');
    box.exec(['sh', '-c', 'printf \'{"interfaces": \' > /etc/xdplb/xdplb.json']);
    failsWith('xdp-root: /etc/xdplb/xdplb.json:1:16: invalid JSON: expected a value');

    inBox('cp', '/root/xdplb.json.good', '/etc/xdplb/xdplb.json');
    execFileSync('ip', ['-n', netns, 'link', 'set', 'dev', dev, 'xdpgeneric', 'object', `${ROOT_DIR}/build/bpf/xdp_plain.o`, 'program', 'xdp_plain_pass']);
    systemctl('reset-failed', 'xdplb-root');
    expect(systemctl('start', 'xdplb-root').code).not.toBe(0);
    expect(systemctl('status', 'xdplb-root', '--no-pager', '--full').out).toMatch(
      new RegExp(`xdp-root: ${dev} already has XDP program 'xdp_plain_pass' \\(id \\d+, skb mode\\) attached: pass --force to replace it`),
    );
    expect(pinned()).toBe(false);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'dev', dev, 'xdpgeneric', 'off']);
    systemctl('reset-failed', 'xdplb-root');
  });

  it('removing the package stops the service and detaches', () => {
    expect(systemctl('start', 'xdplb-root').code).toBe(0);
    expect(hostStatus().root_loaded).toBe(true);
    const r = box.exec(['sh', '-c', 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq xdplb']);
    expect(r.code).toBe(0);
    expect(systemctl('is-active', 'xdplb-root').out.trim()).not.toBe('active');
    expect(attachedProg()).toBeNull();
    expect(pinned()).toBe(false);
  });
});
