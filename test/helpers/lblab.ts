// The tutorial's load balancer lab, per test: a client, the balancer and two
// backends in their own namespaces on one L2 segment (a bridge in a fifth
// namespace), backends running unmodified `python3 -m http.server`. Names are
// unique per lab; destroy() kills the servers it started (by pid) and
// removes every namespace and pin, also after a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, BPF } from './cli.js';
import { deleteNamespaces, uniqueTag } from './netns.js';

export interface LbLab {
  tag: string;
  ns: { sw: string; client: string; lb: string; b1: string; b2: string };
  lbIf: string;
  /** Client addresses (IPv4); the client also has fd00::1, fd00::4, fd00::5. */
  clients4: string[];
  clients6: string[];
  servers: ChildProcess[];
  dir: string;
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function inNs(ns: string, cmd: string, args: string[]): string {
  return execFileSync('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sysctl(ns: string, ...pairs: string[]): void {
  inNs(ns, 'sysctl', ['-q', '-w', ...pairs]);
}

export function makeLbLab(): LbLab {
  const tag = uniqueTag();
  const ns = { sw: `xlbsw-${tag}`, client: `xlbc-${tag}`, lb: `xlbl-${tag}`, b1: `xlb1-${tag}`, b2: `xlb2-${tag}` };
  const lab: LbLab = {
    tag, ns, lbIf: `lb${tag}`,
    clients4: ['10.0.0.1', '10.0.0.4', '10.0.0.5'],
    clients6: ['fd00::1', 'fd00::4', 'fd00::5'],
    servers: [],
    dir: mkdtempSync(join(tmpdir(), 'xdplb-lab-')),
    destroy: () => destroy(lab),
  };
  const hosts: Array<[string, string, string[], string[]]> = [
    [ns.client, `cl${tag}`, lab.clients4, lab.clients6],
    [ns.lb, lab.lbIf, ['10.0.0.10'], ['fd00::10']],
    [ns.b1, `ba${tag}`, ['10.0.0.2'], ['fd00::2']],
    [ns.b2, `bb${tag}`, ['10.0.0.3'], ['fd00::3']],
  ];
  try {
    for (const n of Object.values(ns)) ip('netns', 'add', n);
    ip('-n', ns.sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', ns.sw, 'link', 'set', 'br0', 'up');
    hosts.forEach(([host, dev, v4, v6], i) => {
      const port = `p${i}${tag}`;
      ip('link', 'add', dev, 'netns', host, 'type', 'veth', 'peer', 'name', port, 'netns', ns.sw);
      ip('-n', ns.sw, 'link', 'set', port, 'master', 'br0', 'up');
      // Native XDP_TX on a veth needs the peer to run XDP itself.
      ip('-n', ns.sw, 'link', 'set', 'dev', port, 'xdpdrv', 'object', BPF('xdp_plain.o'), 'program', 'xdp_plain_pass');
      for (const a of v4) ip('-n', host, 'addr', 'add', `${a}/24`, 'dev', dev);
      for (const a of v6) ip('-n', host, 'addr', 'add', `${a}/64`, 'dev', dev, 'nodad');
      ip('-n', host, 'link', 'set', dev, 'up');
      ip('-n', host, 'link', 'set', 'lo', 'up');
      // A veth hands on TCP/UDP checksums unfinished (CHECKSUM_PARTIAL, left
      // to a NIC that does not exist); XDP sees raw frames and updates the
      // checksum incrementally, so it must be complete: as on a wire.
      inNs(host, 'ethtool', ['-K', dev, 'tx', 'off']);
    });
    // The balancer forwards (bpf_fib_lookup needs it), and the kernel takes
    // back a rewritten packet whose neighbour was unresolved (accept_local:
    // its source is the balancer's own address).
    sysctl(ns.lb, 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1',
      'net.ipv4.conf.all.accept_local=1', `net.ipv4.conf.${lab.lbIf}.accept_local=1`,
      'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${lab.lbIf}.rp_filter=0`,
      'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${lab.lbIf}.send_redirects=0`);
  } catch (err) {
    destroy(lab);
    throw err;
  }
  return lab;
}

/** Start `python3 -m http.server 8000` on both backends, each serving a file
 *  `who` naming it; resolves once both answer. */
export async function startHttpBackends(lab: LbLab): Promise<void> {
  for (const name of ['b1', 'b2'] as const) {
    const dir = join(lab.dir, name);
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'who'), name);
    const p = spawn('nsenter', [`--net=/run/netns/${lab.ns[name]}`, 'python3', '-m', 'http.server', '8000', '--bind', '::', '--directory', dir], { stdio: 'ignore' });
    lab.servers.push(p);
  }
  for (const [name, addr] of [['b1', '10.0.0.2'], ['b2', '10.0.0.3']] as const) {
    await waitFor(() => {
      try {
        return inNs(lab.ns[name], 'curl', ['-s', '--max-time', '1', `http://${addr}:8000/who`]) === name;
      } catch {
        return false;
      }
    }, `http.server on ${name}`);
  }
}

/** A UDP echo server on port 5353 of both backends, answering `<name>:<data>`. */
export function startUdpEcho(lab: LbLab): void {
  for (const name of ['b1', 'b2'] as const) {
    const code = `import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\ns.bind(('::',5353))\nwhile True:\n  d,a=s.recvfrom(65535)\n  s.sendto(b'${name}:'+d,a)\n`;
    lab.servers.push(spawn('nsenter', [`--net=/run/netns/${lab.ns[name]}`, 'python3', '-c', code], { stdio: 'ignore' }));
  }
}

export async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function destroy(lab: LbLab): void {
  // Detach first, so the balancer's shared pins go with its last interface.
  for (const [cmd, args] of [['xdp-lb', ['--detach', '--interface', lab.lbIf]], ['xdp-root', ['--detach', '--interface', lab.lbIf]]] as const) {
    try {
      execFileSync('nsenter', [`--net=/run/netns/${lab.ns.lb}`, BIN(cmd), ...args], { stdio: 'ignore' });
    } catch {
      // not attached, or the namespace is gone
    }
  }
  for (const p of lab.servers) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  deleteNamespaces(...Object.values(lab.ns));
  rmSync(lab.dir, { recursive: true, force: true });
}

export interface RequestRecord {
  start: number;
  end: number;
  local: string;
  who: string | null;
  error?: string;
}

/** Node's http client in the client namespace: `count` requests (or until
 *  `ms` elapse), `concurrency` at a time, each on a new connection from the
 *  next client address in turn; one JSON record per request. */
export function loadScript(opts: { url: string; locals: string[]; count?: number; ms?: number; concurrency: number }): string {
  return `
const http = require('node:http');
const o = ${JSON.stringify(opts)};
const out = [];
let started = 0;
const t0 = Date.now();
const more = () => (o.count !== undefined ? started < o.count : Date.now() - t0 < o.ms);
function one() {
  if (!more()) return Promise.resolve();
  const local = o.locals[started++ % o.locals.length];
  const rec = { start: Date.now(), local, who: null };
  return new Promise((resolve) => {
    const req = http.get(o.url, { localAddress: local, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => { rec.who = res.statusCode === 200 ? body : null; if (!rec.who) rec.error = 'status ' + res.statusCode; resolve(); });
      // A connection reset after the headers (a backend that died) ends the response, not the request.
      res.on('error', (e) => { rec.error = e.message; resolve(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { rec.error = e.message; resolve(); });
  }).then(() => { rec.end = Date.now(); out.push(rec); return one(); });
}
Promise.all(Array.from({ length: o.concurrency }, one)).then(() => process.stdout.write(JSON.stringify(out)));
`;
}
