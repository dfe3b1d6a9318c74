// A lab for stateless balancing, per test file:
//
//   client ── router ══ segment (a bridge) ══ balancer 1, balancer 2, backend 1..4
//
// The router routes the stateless VIP to both balancers (an ECMP multipath
// route, hashing on ports) and the NAT VIP to balancer 1; the balancers
// encapsulate to the backends on the segment (GUE), the backends hold the
// VIP on their loopback, run the decapsulator in their root array, an echo
// server (PORT) and python3 -m http.server (HTTP_PORT), and answer the
// client through the router. Names are unique
// per lab; destroy() kills what it started (by pid) and removes every
// namespace and pin, also after a failure.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfMap, closeMaps } from '../../src/libbpf/index.js';
import { LB_MAPS } from '../../src/programs/lb/spec.js';
import { readState, type LbMaps } from '../../src/programs/lb/state.js';
import { SLOT_NONE } from '../../src/programs/lb/layout.js';
import { BIN, BPF } from './cli.js';
import { deleteNamespaces, nsPinDir, uniqueTag } from './netns.js';
import { inNs, waitFor } from './lblab.js';
import { statelessEntry } from './encap.js';

export const VIP = '10.8.100.1'; // stateless, through both balancers
export const NAT_VIP = '10.8.100.2'; // NAT, through balancer 1
export const PORT = 7000;
export const HTTP_PORT = 8000;
export const CLIENT = '10.9.0.1';
export const ROUTER_SEGMENT = '10.8.0.254';
export const BACKENDS = ['10.8.0.21', '10.8.0.22', '10.8.0.23', '10.8.0.24'];
export const BALANCERS = ['10.8.0.11', '10.8.0.12'];

export interface StatelessLab {
  tag: string;
  ns: { sw: string; client: string; router: string; lb: string[]; b: string[] };
  /** Each host's interface on the segment (the client's toward the router). */
  ifs: { client: string; lb: string[]; b: string[] };
  dir: string;
  procs: ChildProcess[];
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function sysctl(ns: string, ...pairs: string[]): void {
  inNs(ns, 'sysctl', ['-q', '-w', ...pairs]);
}

/** Each backend's echo server: a line in, `<name> <line>` back. */
const ECHO = `
import socketserver, sys
name = sys.argv[1].encode()
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(name + b' ' + line)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024
S(('0.0.0.0', ${PORT}), H).serve_forever()
`;

export function makeStatelessLab(): StatelessLab {
  const tag = uniqueTag();
  const lab: StatelessLab = {
    tag,
    ns: { sw: `xssw-${tag}`, client: `xsc-${tag}`, router: `xsr-${tag}`, lb: [`xsl1-${tag}`, `xsl2-${tag}`], b: BACKENDS.map((_, i) => `xsb${i + 1}-${tag}`) },
    ifs: { client: `c${tag}`, lb: [`l1${tag}`, `l2${tag}`], b: BACKENDS.map((_, i) => `b${i + 1}${tag}`) },
    dir: mkdtempSync(join(tmpdir(), 'xdplb-stateless-')),
    procs: [],
    destroy: () => destroy(lab),
  };
  const { ns, ifs } = lab;
  try {
    for (const n of [ns.sw, ns.client, ns.router, ...ns.lb, ...ns.b]) ip('netns', 'add', n);
    ip('-n', ns.sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', ns.sw, 'link', 'set', 'br0', 'up');
    // The client's own link to the router.
    ip('link', 'add', ifs.client, 'netns', ns.client, 'type', 'veth', 'peer', 'name', `r${tag}`, 'netns', ns.router);
    ip('-n', ns.client, 'addr', 'add', `${CLIENT}/24`, 'dev', ifs.client);
    ip('-n', ns.router, 'addr', 'add', '10.9.0.254/24', 'dev', `r${tag}`);
    for (const [n, d] of [[ns.client, ifs.client], [ns.router, `r${tag}`]]) {
      ip('-n', n, 'link', 'set', d, 'up');
      ip('-n', n, 'link', 'set', 'lo', 'up');
    }
    ip('-n', ns.client, 'route', 'add', 'default', 'via', '10.9.0.254');
    // The client's own ports for its short connections stay clear of the
    // fixed ones its long-lived connections and probes bind (40000..49999).
    sysctl(ns.client, 'net.ipv4.ip_local_port_range=50000 60999');
    // The segment: the router, the balancers, the backends. MTU 1600 so
    // that a full-size packet still fits once encapsulated.
    const hosts: Array<[string, string, string]> = [
      [ns.router, `s${tag}`, ROUTER_SEGMENT],
      ...ns.lb.map((n, i): [string, string, string] => [n, ifs.lb[i], BALANCERS[i]]),
      ...ns.b.map((n, i): [string, string, string] => [n, ifs.b[i], BACKENDS[i]]),
    ];
    hosts.forEach(([host, dev, addr], i) => {
      const port = `p${i}${tag}`;
      ip('link', 'add', dev, 'mtu', '1600', 'netns', host, 'type', 'veth', 'peer', 'name', port, 'mtu', '1600', 'netns', ns.sw);
      ip('-n', ns.sw, 'link', 'set', port, 'master', 'br0', 'up');
      // Native XDP_TX on a veth needs the peer to run XDP itself.
      ip('-n', ns.sw, 'link', 'set', 'dev', port, 'xdpdrv', 'object', BPF('xdp_plain.o'), 'program', 'xdp_plain_pass');
      ip('-n', host, 'addr', 'add', `${addr}/24`, 'dev', dev);
      ip('-n', host, 'link', 'set', dev, 'up');
      ip('-n', host, 'link', 'set', 'lo', 'up');
    });
    // Senders finish their checksums (a veth leaves them to a NIC that does
    // not exist; XDP sees raw frames).
    for (const [host, dev] of [[ns.client, ifs.client], ...hosts.map(([h, d]) => [h, d])]) inNs(host, 'ethtool', ['-K', dev, 'tx', 'off']);
    // Forwarding any source (a flood's are random), hashing flows on their ports.
    sysctl(ns.router, 'net.ipv4.conf.all.forwarding=1', 'net.ipv4.fib_multipath_hash_policy=1', 'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0', `net.ipv4.conf.r${tag}.rp_filter=0`, `net.ipv4.conf.s${tag}.rp_filter=0`);
    ip('-n', ns.router, 'route', 'add', `${VIP}/32`, 'nexthop', 'via', BALANCERS[0], 'nexthop', 'via', BALANCERS[1]);
    ip('-n', ns.router, 'route', 'add', `${NAT_VIP}/32`, 'via', BALANCERS[0]);
    // Balancers and backends forward (bpf_fib_lookup needs it) and take back
    // a rewritten packet whose neighbour was unresolved (accept_local).
    for (const [host, dev] of hosts.slice(1).map(([h, d]) => [h, d])) {
      sysctl(host, 'net.ipv4.conf.all.forwarding=1', 'net.ipv4.conf.all.accept_local=1', `net.ipv4.conf.${dev}.accept_local=1`,
        'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${dev}.rp_filter=0`, 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${dev}.send_redirects=0`);
      ip('-n', host, 'route', 'add', 'default', 'via', ROUTER_SEGMENT);
    }
    ns.b.forEach((n, i) => {
      ip('-n', n, 'addr', 'add', `${VIP}/32`, 'dev', 'lo');
      for (const args of [['xdp-root', '--mode', 'native'], ['xdp-decap', '--tunnel-ipv4', BACKENDS[i], '--gue-port', '6080']]) {
        execFileSync('nsenter', [`--net=/run/netns/${n}`, BIN(args[0]), '--attach', '--interface', ifs.b[i], ...args.slice(1)], { stdio: 'ignore' });
      }
      lab.procs.push(spawn('nsenter', [`--net=/run/netns/${n}`, 'python3', '-c', ECHO, `b${i + 1}`], { stdio: 'ignore' }));
      const www = join(lab.dir, `www-b${i + 1}`);
      mkdirSync(www);
      writeFileSync(join(www, 'index.html'), `b${i + 1}\n`);
      lab.procs.push(spawn('nsenter', [`--net=/run/netns/${n}`, 'python3', '-m', 'http.server', String(HTTP_PORT), '--bind', '0.0.0.0', '--directory', www], { stdio: 'ignore' }));
    });
    ns.lb.forEach((n, i) => {
      for (const cmd of ['xdp-root', 'xdp-lb']) {
        execFileSync('nsenter', [`--net=/run/netns/${n}`, BIN(cmd), '--attach', '--interface', ifs.lb[i], ...(cmd === 'xdp-root' ? ['--mode', 'native'] : [])], { stdio: 'ignore' });
      }
    });
  } catch (err) {
    destroy(lab);
    throw err;
  }
  return lab;
}

/** Wait until every backend's echo server and http.server answer on its own address. */
export async function waitForEcho(lab: StatelessLab): Promise<void> {
  for (const [i, n] of lab.ns.b.entries()) {
    await waitFor(() => {
      try {
        return inNs(n, 'python3', ['-c', `import socket;s=socket.create_connection(('${BACKENDS[i]}',${PORT}),1);s.sendall(b'x\\n');print(s.recv(64).decode().strip())`]).trim() === `b${i + 1} x`;
      } catch {
        return false;
      }
    }, `echo server on b${i + 1}`);
    await waitFor(() => {
      try {
        return inNs(n, 'curl', ['-sf', '--max-time', '1', `http://${BACKENDS[i]}:${HTTP_PORT}/`]).trim() === `b${i + 1}`;
      } catch {
        return false;
      }
    }, `http.server on b${i + 1}`);
  }
}

/** `xdp-lb --apply` of `config` in balancer `i`'s namespace: what it
 *  printed (the warnings on stderr). */
export function applyIn(lab: StatelessLab, i: number, config: unknown): { stdout: string; stderr: string } {
  const file = join(lab.dir, `lb${i}.json`);
  writeFileSync(file, JSON.stringify(config));
  const r = spawnSync('nsenter', [`--net=/run/netns/${lab.ns.lb[i]}`, BIN('xdp-lb'), '--apply', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`xdp-lb --apply in ${lab.ns.lb[i]} exited ${r.status}: ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** The decapsulator's counters on backend `i`, as `xdp-decap --status --json` shows them. */
export function decapStats(lab: StatelessLab, i: number): Record<string, number> {
  const out = execFileSync('nsenter', [`--net=/run/netns/${lab.ns.b[i]}`, BIN('xdp-decap'), '--status', '--json'], { encoding: 'utf8' });
  return JSON.parse(out)[lab.ifs.b[i]].stats;
}

/** The balancer's maps in namespace `ns`, read from its pins. */
export function withLbPins<T>(ns: string, fn: (maps: LbMaps) => T): T {
  const dir = `${nsPinDir(ns)}/lb`;
  const maps = Object.fromEntries(LB_MAPS.map((n) => [n, BpfMap.openPinned(`${dir}/${n}`)])) as LbMaps;
  try {
    return fn(maps);
  } finally {
    closeMaps(maps);
  }
}

/** A stateless VIP's table in balancer namespace `ns`: its entries, and the
 *  address of the backend a client flow's entry names now. */
export function statelessView(ns: string, vip = VIP): { slots: Buffer; backendOf: (sport: number) => string | null } {
  return withLbPins(ns, (maps) => {
    const state = readState(maps);
    const held = state.vips.get(`tcp:${vip}:${PORT}`)!;
    const slots = state.slots.get(held.id)!;
    const size = slots.length / 8;
    return {
      slots,
      backendOf: (sport) => {
        const cur = slots.readUInt16LE(statelessEntry({ src: CLIENT, dst: vip, sport, dport: PORT, proto: 'tcp' }, size) * 8);
        return cur === SLOT_NONE ? null : state.backends.get(cur)!.address;
      },
    };
  });
}

/**
 * The client: long-lived connections (from fixed ports, so their entries
 * are known), a line every 200 ms on each, every reply checked (the same
 * backend, the right line); and new short connections on demand. Driven
 * over stdin/stdout, one JSON line per command.
 */
const CLIENT_SCRIPT = `
const net = require('node:net');
const rl = require('node:readline').createInterface({ input: process.stdin });
const conns = [];
let tick;
function open(vip, port, sport, c) {
  const s = net.connect({ host: vip, port, localAddress: ${JSON.stringify(CLIENT)}, localPort: sport });
  c.socket = s;
  let buf = '';
  s.setNoDelay(true);
  s.on('connect', () => s.write('hello\\n'));
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const [name, word, k] = line.split(' ');
      if (!c.name && word === 'hello') c.name = name;
      else if (name !== c.name || word !== 'ping' || Number(k) !== c.acked + 1) c.broken ??= 'wrong reply: ' + line;
      else { c.acked++; c.waitingSince = 0; }
    }
  });
  s.on('error', (e) => { c.broken ??= e.code || e.message; });
  s.on('close', () => { if (!c.ending) c.broken ??= 'closed'; });
}
function reply(id, v) { process.stdout.write(JSON.stringify({ id, v }) + '\\n'); }
function probe(vip, port, first, count) {
  return Promise.all(Array.from({ length: count }, (_, i) => new Promise((resolve) => {
    const rec = { sport: first + i, name: null };
    const s = net.connect({ host: vip, port, localAddress: ${JSON.stringify(CLIENT)}, localPort: first + i, timeout: 3000 });
    s.on('connect', () => s.write('who\\n'));
    s.on('data', (d) => { rec.name = String(d).split(' ')[0]; s.end(); });
    s.on('timeout', () => { rec.error = 'timeout'; s.destroy(); });
    s.on('error', (e) => { rec.error = e.code || e.message; });
    s.on('close', () => resolve(rec));
  })));
}
// HTTP requests one after another, each on a new connection, all counted.
const http = require('node:http');
const web = { ok: 0, failed: 0, errors: [], running: false };
function request(vip, port) {
  if (!web.running) return;
  const req = http.get({ host: vip, port, path: '/', agent: false, timeout: 3000 }, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => {
      if (res.statusCode === 200 && /^b\\d\\n$/.test(body)) web.ok++;
      else { web.failed++; web.errors.push('status ' + res.statusCode + ': ' + body.slice(0, 40)); }
      setTimeout(() => request(vip, port), 20);
    });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { web.failed++; web.errors.push(e.code || e.message); setTimeout(() => request(vip, port), 20); });
}
const view = () => conns.map(({ sport, vip, name, acked, broken, waitingSince }) => ({ sport, vip, name, acked, broken: broken ?? null, stalled: waitingSince ? Date.now() - waitingSince : 0 }));
rl.on('line', async (line) => {
  const [id, cmd, ...a] = line.split(' ');
  if (cmd === 'open') {
    const [vip, port, first, count] = [a[0], Number(a[1]), Number(a[2]), Number(a[3])];
    for (let i = 0; i < count; i++) {
      const c = { sport: first + i, vip, name: null, acked: 0, sent: 0, waitingSince: 0 };
      conns.push(c);
      open(vip, port, first + i, c);
    }
    tick ??= setInterval(() => {
      for (const c of conns) {
        if (!c.name || c.broken || c.ending) continue;
        if (c.sent > c.acked) continue; // one line in flight at a time
        c.sent++;
        c.waitingSince = Date.now();
        c.socket.write('ping ' + c.sent + '\\n');
      }
    }, 200);
    reply(id, true);
  } else if (cmd === 'probe') {
    reply(id, await probe(a[0], Number(a[1]), Number(a[2]), Number(a[3])));
  } else if (cmd === 'http') {
    web.running = true;
    request(a[0], Number(a[1]));
    reply(id, true);
  } else if (cmd === 'httpstats') {
    reply(id, { ok: web.ok, failed: web.failed, errors: web.errors.slice(0, 10) });
  } else if (cmd === 'status') {
    reply(id, view());
  } else if (cmd === 'end') {
    clearInterval(tick);
    web.running = false;
    for (const c of conns) { c.ending = true; c.socket.destroy(); }
    reply(id, view());
    process.exit(0);
  }
});
`;

export interface ConnView {
  sport: number;
  vip: string;
  name: string | null;
  acked: number;
  broken: string | null;
  stalled: number;
}

export interface ProbeRecord {
  sport: number;
  name: string | null;
  error?: string;
}

export interface HttpStats {
  ok: number;
  failed: number;
  errors: string[];
}

export interface Client {
  /** Start HTTP requests to vip:port, one after another, each on a new connection. */
  http(vip: string, port: number): Promise<void>;
  httpStats(): Promise<HttpStats>;
  open(vip: string, port: number, first: number, count: number): Promise<void>;
  probe(vip: string, port: number, first: number, count: number): Promise<ProbeRecord[]>;
  status(): Promise<ConnView[]>;
  end(): Promise<ConnView[]>;
}

export function startClient(lab: StatelessLab): Client {
  const proc = spawn('nsenter', [`--net=/run/netns/${lab.ns.client}`, process.execPath, '-e', CLIENT_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  lab.procs.push(proc);
  const waiting = new Map<number, (v: unknown) => void>();
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const { id, v } = JSON.parse(l);
    waiting.get(Number(id))?.(v);
    waiting.delete(Number(id));
  });
  let next = 0;
  const ask = <T>(cmd: string): Promise<T> => new Promise((resolve) => {
    const id = next++;
    waiting.set(id, resolve as (v: unknown) => void);
    proc.stdin!.write(`${id} ${cmd}\n`);
  });
  return {
    http: (vip, port) => ask(`http ${vip} ${port}`),
    httpStats: () => ask('httpstats'),
    open: (vip, port, first, count) => ask(`open ${vip} ${port} ${first} ${count}`),
    probe: (vip, port, first, count) => ask(`probe ${vip} ${port} ${first} ${count}`),
    status: () => ask('status'),
    end: () => ask('end'),
  };
}

function destroy(lab: StatelessLab): void {
  for (const p of lab.procs) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  lab.ns.lb.forEach((n, i) => {
    for (const [cmd, args] of [['xdp-lb', ['--detach', '--interface', lab.ifs.lb[i]]], ['xdp-root', ['--detach', '--interface', lab.ifs.lb[i]]]] as const) {
      try {
        execFileSync('nsenter', [`--net=/run/netns/${n}`, BIN(cmd), ...args], { stdio: 'ignore' });
      } catch {
        // not attached, or the namespace is gone
      }
    }
  });
  lab.ns.b.forEach((n, i) => {
    try {
      execFileSync('nsenter', [`--net=/run/netns/${n}`, BIN('xdp-root'), '--detach', '--interface', lab.ifs.b[i]], { stdio: 'ignore' });
    } catch {
      // not attached
    }
  });
  deleteNamespaces(lab.ns.sw, lab.ns.client, lab.ns.router, ...lab.ns.lb, ...lab.ns.b);
  rmSync(lab.dir, { recursive: true, force: true });
}
