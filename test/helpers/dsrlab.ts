// The load balancer lab (lblab.ts) set up for direct server return: the
// balancer holds a VIP per mode and family on its interface; each backend
// holds them on lo, has the sysctls `xdp-decap --check` asks for, its own
// root array with the decapsulator attached by the CLI, and an unmodified
// `python3 -m http.server --cgi` whose access log (stderr) goes to a file.
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, ok, run, xdpRoot } from './cli.js';
import { inNs, makeLbLab, waitFor, type LbLab } from './lblab.js';

export const MODES = ['dsr-l2', 'ipip', 'gue'] as const;
export type DsrMode = (typeof MODES)[number];

/** A VIP per mode and family, all on port 8000. */
export const VIPS: Record<DsrMode, { v4: string; v6: string }> = {
  'dsr-l2': { v4: '10.0.0.20', v6: 'fd00::20' },
  ipip: { v4: '10.0.0.21', v6: 'fd00::21' },
  gue: { v4: '10.0.0.22', v6: 'fd00::22' },
};
export const ALL_VIPS = MODES.flatMap((m) => [VIPS[m].v4, VIPS[m].v6]);
export const BACKENDS = { b1: { v4: '10.0.0.2', v6: 'fd00::2', dev: 'ba' }, b2: { v4: '10.0.0.3', v6: 'fd00::3', dev: 'bb' } } as const;
export type BackendName = keyof typeof BACKENDS;

export interface DsrLab extends LbLab {
  /** Backend interface names. */
  devs: Record<BackendName, string>;
  /** Access log files of the backends' http.server. */
  logs: Record<BackendName, string>;
}

/** The config the balancer runs: each mode's VIPs to both backends (but
 *  `without.backend` for the VIP `without.vip`). */
export function dsrConfig(without?: { vip: string; backend: string }): unknown {
  return {
    encap_source_ipv4: '10.0.0.10', encap_source_ipv6: 'fd00::10',
    vips: MODES.flatMap((forwarding) => (['v4', 'v6'] as const).map((f) => {
      const address = VIPS[forwarding][f];
      const backends = Object.values(BACKENDS).filter((b) => address !== without?.vip || b[f] !== without.backend).map((b) => ({ address: b[f] }));
      return { address, port: 8000, protocol: 'tcp', forwarding, backends };
    })),
  };
}

export const sysctl = (ns: string, ...pairs: string[]) => inNs(ns, 'sysctl', ['-q', '-w', ...pairs]);

/** What `xdp-decap --check` asks of a backend, on its interface. */
export function backendSysctls(ns: string, dev: string): void {
  sysctl(ns, 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', `net.ipv4.conf.${dev}.arp_ignore=1`,
    `net.ipv4.conf.${dev}.arp_announce=2`, 'net.ipv4.conf.all.rp_filter=2', `net.ipv4.conf.${dev}.rp_filter=2`);
}

/** The CGI script the 100 KB POST goes to: the client's address, the
 *  length and a digest of the body it got. */
const SUM_CGI = `#!/usr/bin/python3
import hashlib, os, sys
body = sys.stdin.buffer.read(int(os.environ.get('CONTENT_LENGTH') or 0))
sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n')
sys.stdout.write('%s %d %s' % (os.environ.get('REMOTE_ADDR'), len(body), hashlib.sha256(body).hexdigest()))
`;

export async function makeDsrLab(mode: 'native' | 'skb', config = dsrConfig()): Promise<DsrLab> {
  const base = makeLbLab();
  const lab: DsrLab = {
    ...base,
    devs: { b1: `ba${base.tag}`, b2: `bb${base.tag}` },
    logs: { b1: join(base.dir, 'b1.log'), b2: join(base.dir, 'b2.log') },
  };
  // destroy() of the base lab kills the servers pushed here.
  lab.servers = base.servers;
  try {
    const lb = lab.ns.lb;
    // The IPv6 VIPs deprecated (preferred_lft 0): still the balancer's for
    // neighbour discovery, never the source of its own packets, which
    // would otherwise take the VIP nearest the backend's address.
    for (const vip of ALL_VIPS) {
      const six = vip.includes(':');
      ok(run('ip', ['-n', lb, 'addr', 'add', `${vip}/${six ? 128 : 32}`, 'dev', lab.lbIf, ...(six ? ['nodad', 'preferred_lft', '0'] : [])]));
    }
    // CGI scripts run as nobody: the served tree must be readable by it.
    chmodSync(lab.dir, 0o755);
    for (const name of ['b1', 'b2'] as const) {
      const ns = lab.ns[name];
      const dev = lab.devs[name];
      for (const vip of ALL_VIPS) ok(run('ip', ['-n', ns, 'addr', 'add', `${vip}/${vip.includes(':') ? 128 : 32}`, 'dev', 'lo']));
      backendSysctls(ns, dev);
      const www = join(lab.dir, name);
      mkdirSync(join(www, 'cgi-bin'), { recursive: true, mode: 0o755 });
      chmodSync(www, 0o755);
      writeFileSync(join(www, 'who'), name);
      writeFileSync(join(www, 'cgi-bin', 'sum'), SUM_CGI, { mode: 0o755 });
      const log = openSync(lab.logs[name], 'w');
      try {
        lab.servers.push(spawn('nsenter', [`--net=/run/netns/${ns}`, 'python3', '-m', 'http.server', '8000', '--cgi', '--bind', '::', '--directory', www], { stdio: ['ignore', 'ignore', log] }));
      } finally {
        closeSync(log);
      }
    }
    attachAll(lab, mode);
    const file = join(lab.dir, 'dsr.json');
    writeFileSync(file, JSON.stringify(config));
    ok(run(BIN('xdp-lb'), ['--apply', file], { netns: lb }));
    // dsr-l2 drops a packet whose backend's neighbour is unresolved (the
    // kernel would route it to the VIP): resolve them first, as traffic
    // would have on a live balancer.
    for (const b of Object.values(BACKENDS)) {
      ok(run('ping', ['-n', '-q', '-c', '1', '-W', '2', b.v4], { netns: lb }));
      ok(run('ping', ['-n', '-q', '-c', '1', '-W', '2', b.v6], { netns: lb }));
    }
    for (const name of ['b1', 'b2'] as const) {
      await waitFor(() => {
        try {
          return inNs(lab.ns[name], 'curl', ['-s', '--max-time', '1', `http://${BACKENDS[name].v4}:8000/who`]) === name;
        } catch {
          return false;
        }
      }, `http.server on ${name}`);
    }
  } catch (err) {
    lab.destroy();
    throw err;
  }
  return lab;
}

/** Root arrays in `mode` on the balancer (with xdp-lb) and the backends
 *  (with xdp-decap, attached by the CLI with its defaults). */
export function attachAll(lab: DsrLab, mode: 'native' | 'skb'): void {
  for (const name of ['b1', 'b2'] as const) {
    ok(xdpRoot(['--attach', '--interface', lab.devs[name], '--mode', mode], { netns: lab.ns[name] }));
    ok(run(BIN('xdp-decap'), ['--attach', '--interface', lab.devs[name]], { netns: lab.ns[name] }));
  }
  ok(xdpRoot(['--attach', '--interface', lab.lbIf, '--mode', mode], { netns: lab.ns.lb }));
  ok(run(BIN('xdp-lb'), ['--attach', '--interface', lab.lbIf], { netns: lab.ns.lb }));
}

/** Everything attached in the other mode: the root arrays (and their
 *  programs) detached and attached again; the balancer's VIPs, pinned
 *  for the namespace, stay. */
export function switchMode(lab: DsrLab, mode: 'native' | 'skb'): void {
  ok(run(BIN('xdp-lb'), ['--detach', '--interface', lab.lbIf], { netns: lab.ns.lb }));
  ok(xdpRoot(['--detach', '--interface', lab.lbIf], { netns: lab.ns.lb }));
  for (const name of ['b1', 'b2'] as const) ok(xdpRoot(['--detach', '--interface', lab.devs[name]], { netns: lab.ns[name] }));
  attachAll(lab, mode);
}

/** Requests in a backend's access log, by client address (an IPv4 client
 *  of the dual-stack socket shows as ::ffff:a.b.c.d). */
export function accessLog(lab: DsrLab, name: BackendName, path = '/who'): string[] {
  const out: string[] = [];
  for (const line of readFileSync(lab.logs[name], 'utf8').split('\n')) {
    const m = /^(\S+) - - \[[^\]]*\] "(?:GET|POST) (\S+) HTTP\/1\.[01]" /.exec(line);
    if (m && m[2] === path) out.push(m[1].replace(/^::ffff:/, ''));
  }
  return out;
}
