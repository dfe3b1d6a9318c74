// A two-host lab per test: namespaces `client` and `server` joined by a veth
// pair, with unique names so parallel and repeated runs never collide, and
// removed afterwards whatever happened.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';

let counter = 0;

/** A short unique tag: interface names are limited to 15 characters. */
export function uniqueTag(): string {
  counter += 1;
  return `${(process.pid % 100000).toString(36)}${counter.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
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
  for (const ns of [lab.client, lab.server]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
  for (const dev of [lab.serverIf, lab.clientIf]) {
    const dir = `/sys/fs/bpf/xdplb/${dev}`;
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}
