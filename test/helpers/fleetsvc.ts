// xdplb running on a fleet lab (fleet.ts) the way systemd runs it: on each
// balancer `xdp-root run` and `xdp-lb run`, with a config file of its own
// (its front interface) holding the same `lb` section everywhere; its BIRD
// is the lab's. Backends run unmodified `python3 -m http.server`, the VIPs
// on `lo` and the decapsulator in their root arrays (DSR: they answer the
// clients through the router). Every process is killed by its own pid and
// every pin removed by close(), also after a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, ok, run, xdpRoot } from './cli.js';
import type { Fleet, FleetBackend, FleetBalancer } from './fleet.js';
import { inNs, waitFor } from './lblab.js';
import { nsPinDir } from './netns.js';
import { NotifySocket, netnsWithSys, startDaemon, type Daemon } from './service.js';

export interface Running {
  d: Daemon;
  n: NotifySocket;
  command: string;
}

export const GUE_PORT = 6080;
/** The outer source every balancer uses (the same config everywhere). */
export const ENCAP4 = '10.3.0.100';
export const ENCAP6 = 'fd03::100';

export class FleetServices {
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  private readonly running: Running[] = [];
  private readonly servers = new Map<string, ChildProcess>();

  constructor(readonly f: Fleet) {
    this.runDir = join(f.dir, 'run');
    this.env = { XDPLB_RUN_DIR: this.runDir };
  }

  configFile(b: FleetBalancer): string {
    return join(this.f.dir, b.name, 'xdplb.json');
  }

  /** The balancer's config: its front interface, native mode, `lb` as given
   *  with BGP through its own BIRD, and metrics when asked. */
  writeConfig(b: FleetBalancer, lb: object, metrics?: string): void {
    const bgp = { bird_socket: b.birdSocket, include_file: b.includeFile, static_protocol: 'xdplb_vips', peers: ['router1'], withdraw_wait_ms: 1000 };
    const config = { interfaces: [b.frontIf], mode: 'native', ...(metrics ? { metrics: { listen: metrics } } : {}), lb: { enabled: true, bgp, ...lb } };
    mkdirSync(join(this.f.dir, b.name), { recursive: true });
    writeFileSync(this.configFile(b), JSON.stringify(config, null, 1));
  }

  /** Start `command run` in the balancer's namespace; resolves at READY. */
  async start(b: FleetBalancer, command: 'xdp-root' | 'xdp-lb'): Promise<Running> {
    const n = new NotifySocket();
    await n.start();
    const d = startDaemon([...netnsWithSys(b.ns), BIN(command), 'run', '--config', this.configFile(b)], { NOTIFY_SOCKET: n.path, ...this.env });
    const r = { d, n, command };
    this.running.push(r);
    await Promise.race([
      n.waitFor(/^READY=1$/, 0, 30_000),
      d.exited.then((code) => {
        throw new Error(`${command} run in ${b.name} exited ${code}: ${d.stderr.join(' | ')}`);
      }),
    ]);
    return r;
  }

  /** SIGTERM, as systemd stops a unit; resolves with the exit code. */
  async stop(r: Running): Promise<number | null> {
    r.d.proc.kill('SIGTERM');
    return r.d.exited;
  }

  async kill(r: Running): Promise<void> {
    r.d.proc.kill('SIGKILL');
    await r.d.exited;
  }

  /** `xdp-lb` (or another command) in the balancer's namespace, with the run directory. */
  cli(b: FleetBalancer, command: string, args: string[]): string {
    return ok(run(BIN(command), args, { netns: b.ns, env: this.env }));
  }

  status(b: FleetBalancer): any {
    return JSON.parse(this.cli(b, 'xdp-lb', ['--status', '--json']));
  }

  /** The VIPs on `lo` of every backend, the decapsulator on its interface,
   *  and `python3 -m http.server` serving `who` (its name); resolves once
   *  each answers on its own address. */
  async startBackends(vips: string[]): Promise<void> {
    for (const s of this.f.backends) {
      for (const v of vips) run('ip', ['-n', s.ns, 'address', 'add', v.includes(':') ? `${v}/128` : `${v}/32`, 'dev', 'lo']);
      // Forwarding for the decapsulator's FIB lookups when it chains a
      // stateless VIP's packet on to another backend.
      inNs(s.ns, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${s.ifname}.rp_filter=0`,
        'net.ipv4.conf.all.forwarding=1', 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${s.ifname}.send_redirects=0`]);
      ok(xdpRoot(['--attach', '--interface', s.ifname, '--mode', 'native'], { netns: s.ns }));
      ok(run(BIN('xdp-decap'), ['--attach', '--interface', s.ifname, '--tunnel-ipv4', s.addr4, '--tunnel-ipv6', s.addr6, '--gue-port', String(GUE_PORT)], { netns: s.ns }));
      this.startServer(s);
    }
    for (const s of this.f.backends) await this.serving(s);
  }

  startServer(s: FleetBackend): void {
    const dir = join(this.f.dir, s.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'who'), s.name);
    this.servers.set(s.name, spawn('nsenter', [`--net=/run/netns/${s.ns}`, 'python3', '-m', 'http.server', '8000', '--bind', '::', '--protocol', 'HTTP/1.1', '--directory', dir], { stdio: 'ignore' }));
  }

  async serving(s: FleetBackend): Promise<void> {
    await waitFor(() => {
      try {
        return inNs(s.ns, 'curl', ['-s', '--max-time', '1', `http://${s.addr4}:8000/who`]) === s.name;
      } catch {
        return false;
      }
    }, `http.server on ${s.name}`);
  }

  /** Kill a backend's server by its own pid (nsenter execs python3). */
  async killServer(s: FleetBackend): Promise<void> {
    const p = this.servers.get(s.name);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  /** Everything this started, then the pins the lab's namespaces hold. */
  async close(): Promise<void> {
    for (const r of this.running.reverse()) {
      if (r.d.proc.exitCode === null && r.d.proc.signalCode === null) {
        r.d.proc.kill('SIGKILL');
        await r.d.exited;
      }
      r.n.close();
    }
    for (const p of this.servers.values()) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    for (const ns of [...this.f.balancers.map((b) => b.ns), ...this.f.backends.map((s) => s.ns)]) {
      try {
        rmSync(nsPinDir(ns), { recursive: true, force: true });
      } catch {
        // the namespace is gone already
      }
    }
  }
}

/** The balancers' sysctls for DSR: a packet passed up while a neighbour
 *  resolves has the encapsulation source, which is not theirs. */
export function balancerSysctls(b: FleetBalancer): void {
  inNs(b.ns, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${b.frontIf}.rp_filter=0`, `net.ipv4.conf.${b.backIf}.rp_filter=0`]);
}

/**
 * No unknown-unicast flooding on the front switch. A NIC drops frames for
 * other MAC addresses before XDP sees them; a veth does not. Once a cut
 * balancer's port has lost its carrier, the switch floods frames for its MAC
 * to every port, and the other balancers' XDP programs would balance them,
 * hiding the cut. Without flooding, they are lost, as on a real segment.
 */
export function noUnicastFlood(f: Fleet): void {
  const ports = JSON.parse(execFileSync('ip', ['-n', f.ns.front, '-j', 'link', 'show', 'master', 'br0'], { encoding: 'utf8' })) as Array<{ ifname: string }>;
  for (const p of ports) execFileSync('bridge', ['-n', f.ns.front, 'link', 'set', 'dev', p.ifname, 'flood', 'off']);
}
