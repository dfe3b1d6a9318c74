// A two-host lab per test: namespaces `client` and `server` joined by a veth
// pair, with unique names so parallel and repeated runs never collide, and
// removed afterwards whatever happened.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync } from 'node:fs';
import { setNetns } from '../../src/sys/netns.js';

let counter = 0;

/** A short unique tag: interface names are limited to 15 characters. */
export function uniqueTag(): string {
  counter += 1;
  return `${(process.pid % 100000).toString(36)}${counter.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

/** The pin directory of a network namespace's xdplb state (see
 *  src/root/pins.ts): named after its cookie, read inside it. */
export function nsPinDir(netns: string, root = process.env.XDPLB_PIN_ROOT || '/sys/fs/bpf/xdplb'): string {
  const cookie = execFileSync('nsenter', [`--net=/run/netns/${netns}`, 'python3', '-c',
    'import socket,struct; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); print(struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, 71, 8))[0])'],
  { encoding: 'utf8' }).trim();
  return `${root}/netns-${cookie}`;
}

/** The pin directory of an interface of a namespace. */
export function ifPinDir(netns: string, dev: string): string {
  const [link] = JSON.parse(execFileSync('ip', ['-n', netns, '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' }));
  return `${nsPinDir(netns)}/if-${link.ifindex}`;
}

/** Switch this thread into the network namespace `name` (sockets made from
 *  now on live there, and so does what reads "this namespace"); the
 *  returned function switches back. */
export function enterNetns(name: string): () => void {
  const back = openSync('/proc/self/ns/net', 'r');
  try {
    const ns = openSync(`/run/netns/${name}`, 'r');
    try {
      setNetns(ns);
    } finally {
      closeSync(ns);
    }
  } catch (err) {
    closeSync(back);
    throw err;
  }
  return () => {
    try {
      setNetns(back);
    } finally {
      closeSync(back);
    }
  };
}

/** Delete namespaces and the pins made in them (a namespace's pins outlive
 *  it otherwise: bpffs is the host's). */
export function deleteNamespaces(...names: string[]): void {
  for (const ns of names) {
    try {
      rmSync(nsPinDir(ns), { recursive: true, force: true });
    } catch {
      // the namespace is gone already
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function sysctl(netns: string, key: string, value: string): void {
  execFileSync('nsenter', [`--net=/run/netns/${netns}`, 'sysctl', '-q', '-w', `${key}=${value}`], { stdio: 'ignore' });
}

export interface Lab {
  tag: string;
  client: string;
  server: string;
  clientIf: string;
  serverIf: string;
  clientIp: string;
  serverIp: string;
  destroy(): void;
}

/** Two namespaces and one veth pair, IPv4 only, neighbours static so that
 *  the only packets crossing are the ones a test sends. */
export function makeLab(): Lab {
  const tag = uniqueTag();
  const lab: Lab = {
    tag,
    client: `xlc-${tag}`,
    server: `xls-${tag}`,
    clientIf: `xc${tag}`,
    serverIf: `xs${tag}`,
    clientIp: '10.201.0.1',
    serverIp: '10.201.0.2',
    destroy: () => destroyLab(lab),
  };
  try {
    ip('netns', 'add', lab.client);
    ip('netns', 'add', lab.server);
    ip('link', 'add', lab.clientIf, 'netns', lab.client, 'type', 'veth', 'peer', 'name', lab.serverIf, 'netns', lab.server);
    for (const [ns, dev, addr] of [[lab.client, lab.clientIf, lab.clientIp], [lab.server, lab.serverIf, lab.serverIp]]) {
      sysctl(ns, `net.ipv6.conf.all.disable_ipv6`, '1');
      sysctl(ns, `net.ipv6.conf.default.disable_ipv6`, '1');
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
      ip('-n', ns, 'link', 'set', dev, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    const macOf = (ns: string, dev: string) =>
      JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', dev], { encoding: 'utf8' }))[0].address as string;
    ip('-n', lab.client, 'neigh', 'replace', lab.serverIp, 'lladdr', macOf(lab.server, lab.serverIf), 'dev', lab.clientIf, 'nud', 'permanent');
    ip('-n', lab.server, 'neigh', 'replace', lab.clientIp, 'lladdr', macOf(lab.client, lab.clientIf), 'dev', lab.serverIf, 'nud', 'permanent');
  } catch (err) {
    destroyLab(lab);
    throw err;
  }
  return lab;
}

function destroyLab(lab: Lab): void {
  deleteNamespaces(lab.client, lab.server);
}
