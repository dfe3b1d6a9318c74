// Announcing VIPs through BIRD 2. xdplb speaks no BGP: it writes the VIPs it
// wants announced into a file of BIRD config it owns, two static protocols
// (`<name>4` and `<name>6`, as a BIRD static protocol has one channel), and
// asks BIRD to reconfigure over BIRD's control socket. The operator's
// bird.conf includes the file and owns everything else: router id, BFD, the
// BGP sessions and the export filter naming those two protocols (see
// docs/BGP.md and etc/bird/xdplb-balancer.conf).
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { createConnection, isIP, type Socket } from 'node:net';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { UsageError, XdplbError } from '../../errors.js';
import { FAMILY, addrBytes, addrText } from './layout.js';

// ---- config ----

export interface BirdConfig {
  /** BIRD's control socket. */
  socket: string;
  /** The file xdplb writes and the operator's bird.conf includes. */
  includeFile: string;
  /** Base name of the generated static protocols: `<name>4`, `<name>6`. */
  protocol: string;
  /** BGP protocols (in BIRD's config) whose sessions status() reports. */
  peers: string[];
  /** After a withdrawal on stop, how long the balancer keeps serving
   *  before it leaves its slots: the routers' time to move the flows. */
  withdrawWaitMs: number;
}

/** Debian's bird2 runs BIRD with this socket. The include file lives in
 *  /run/bird (made by the package's unit before BIRD starts, cleared at
 *  boot), so a rebooted machine announces nothing until xdplb has attached
 *  its data plane and says so. */
export const BGP_DEFAULTS: BirdConfig = {
  socket: '/run/bird/bird.ctl',
  includeFile: '/run/bird/xdplb-vips.conf',
  protocol: 'xdplb_vips',
  peers: [],
  withdrawWaitMs: 2000,
};

const BGP_KEYS = ['bird_socket', 'include_file', 'static_protocol', 'peers', 'withdraw_wait_ms'];
// A BIRD symbol; 62 characters leave room for the family suffix (BIRD's limit is 64).
const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]{0,61}$/;
const shown = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v));

/** The `bgp` config section: `{ "bird_socket", "include_file",
 *  "static_protocol", "peers", "withdraw_wait_ms" }`, every key optional. Errors start with the
 *  key path (`bgp.peers[1]: expected ...`). */
export function parseBgpConfig(value: unknown, path = 'bgp'): BirdConfig {
  const fail = (key: string, what: string): never => {
    throw new UsageError(`${key}: ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, `expected an object, got ${shown(value)}`);
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!BGP_KEYS.includes(k)) fail(`${path}.${k}`, `unknown key: expected one of ${BGP_KEYS.join(', ')}`);
  const file = (key: string, fallback: string): string => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || !isAbsolute(v) || v.endsWith('/') || /[\0\n]/.test(v)) fail(`${path}.${key}`, `expected an absolute file path, got ${shown(v)}`);
    return v as string;
  };
  const symbol = (v: unknown, key: string): string => {
    if (typeof v !== 'string' || !SYMBOL.test(v)) fail(key, `expected a BIRD protocol name (a letter or _, then letters, digits or _, at most 62), got ${shown(v)}`);
    return v as string;
  };
  const protocol = o.static_protocol === undefined ? BGP_DEFAULTS.protocol : symbol(o.static_protocol, `${path}.static_protocol`);
  let peers: string[] = [];
  if (o.peers !== undefined) {
    if (!Array.isArray(o.peers)) fail(`${path}.peers`, `expected a list of BIRD protocol names, got ${shown(o.peers)}`);
    peers = (o.peers as unknown[]).map((p, i) => symbol(p, `${path}.peers[${i}]`));
    peers.forEach((p, i) => {
      if (peers.indexOf(p) !== i) fail(`${path}.peers[${i}]`, `'${p}' is listed twice`);
      if (p === `${protocol}4` || p === `${protocol}6`) fail(`${path}.peers[${i}]`, `'${p}' is one of xdplb's static protocols, not a BGP session`);
    });
  }
  const wait = o.withdraw_wait_ms;
  if (wait !== undefined && (typeof wait !== 'number' || !Number.isInteger(wait) || wait < 0 || wait > 60_000)) {
    fail(`${path}.withdraw_wait_ms`, `expected a whole number of ms from 0 to 60000, got ${shown(wait)}`);
  }
  return {
    socket: file('bird_socket', BGP_DEFAULTS.socket),
    includeFile: file('include_file', BGP_DEFAULTS.includeFile),
    protocol,
    peers,
    withdrawWaitMs: (wait as number | undefined) ?? BGP_DEFAULTS.withdrawWaitMs,
  };
}

// ---- the include file ----

/** Canonical, sorted, deduplicated prefixes; a bare address is a host
 *  prefix. Throws on the first bad one, naming it. */
export function normalizePrefixes(prefixes: readonly string[]): { v4: string[]; v6: string[] } {
  const seen = new Map<string, { family: number; addr: Buffer; len: number }>();
  for (const text of prefixes) {
    const m = typeof text === 'string' ? /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text) : null;
    const family = m && !m[1].includes('%') ? isIP(m[1]) : 0;
    if (!m || !family) {
      throw new UsageError(`invalid VIP prefix ${shown(text)}: expected an IPv4 or IPv6 address with an optional /length, like 10.0.0.10 or fd00::10/128`);
    }
    const bits = family === FAMILY.ipv4 ? 32 : 128;
    const len = m[2] === undefined ? bits : Number(m[2]);
    if (len > bits) throw new UsageError(`invalid VIP prefix '${text}': the length must be from 0 to ${bits}`);
    const addr = addrBytes(m[1]).subarray(0, bits / 8);
    const net = Buffer.from(addr);
    for (let bit = len; bit < bits; bit++) net[bit >> 3] &= ~(0x80 >> (bit & 7));
    const canonical = `${addrText(net, family)}/${len}`;
    if (!net.equals(addr)) throw new UsageError(`invalid VIP prefix '${text}': host bits are set, expected ${canonical}`);
    seen.set(canonical, { family, addr: net, len });
  }
  const sorted = (family: number) => [...seen].filter(([, p]) => p.family === family)
    .sort(([, a], [, b]) => Buffer.compare(a.addr, b.addr) || a.len - b.len)
    .map(([text]) => text);
  return { v4: sorted(FAMILY.ipv4), v6: sorted(FAMILY.ipv6) };
}

/** The include file for `prefixes`: both protocols always, empty when
 *  nothing of that family is announced, so withdrawing keeps them up. */
export function renderInclude(protocol: string, prefixes: readonly string[]): string {
  const { v4, v6 } = normalizePrefixes(prefixes);
  const block = (family: 4 | 6, list: string[]) =>
    `protocol static ${protocol}${family} {\n\tipv${family};\n${list.map((p) => `\troute ${p} blackhole;\n`).join('')}}\n`;
  return '# Written by xdplb: the VIPs this balancer announces. Do not edit; it is\n'
    + '# rewritten whenever they change. Included by bird.conf (see xdplb docs/BGP.md).\n'
    + block(4, v4) + block(6, v6);
}

/** Replace `file` with `content` in one rename, readable by BIRD's own user
 *  (Debian runs it as `bird`); a temp name BIRD's include globs do not match. */
async function writeAtomically(file: string, content: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.chmod(0o644); // whatever the umask
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new BirdError(`cannot write ${file}: ${errnoText(err)}`);
  }
}

// ---- BIRD's control socket ----

/** A failure talking to BIRD or one BIRD reported; the message is one line. */
export class BirdError extends XdplbError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'BirdError';
  }
}

export interface ReplyLine {
  code: number;
  text: string;
}

/** One reply: its lines (a ` text` continuation carries the code before
 *  it), the last one being `NNNN text`. */
export interface Reply {
  code: number;
  text: string;
  lines: ReplyLine[];
}

/** Splits BIRD's byte stream into replies: `NNNN-text` and ` text` go on,
 *  `NNNN text` ends one. */
export class ReplyReader {
  private buffer = '';
  private lines: ReplyLine[] = [];
  private last = -1;

  /** Feed a chunk; returns the replies it completed. */
  push(chunk: string): Reply[] {
    this.buffer += chunk;
    const done: Reply[] = [];
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      const m = /^(\d{4})([ -])(.*)$/.exec(line);
      if (m) {
        this.last = Number(m[1]);
        this.lines.push({ code: this.last, text: m[3] });
        if (m[2] === ' ') {
          done.push({ code: this.last, text: m[3], lines: this.lines });
          this.lines = [];
          this.last = -1;
        }
      } else if (line.startsWith(' ') && this.last >= 0) {
        this.lines.push({ code: this.last, text: line.slice(1) });
      } else {
        throw new BirdError(`unexpected line from BIRD: ${shown(line.slice(0, 80))}`);
      }
    }
    return done;
  }
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT': return 'no such file or directory';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'ECONNREFUSED': return 'connection refused';
    case 'ENOTSOCK': return 'not a socket';
    default: return e.code ?? e.message;
  }
}

/** One connection to BIRD's control socket, with a deadline on every wait. */
class BirdConnection {
  private readonly reader = new ReplyReader();
  private replies: Reply[] = [];
  private waiting?: { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };
  private failure?: Error;
  version = '';

  private constructor(private readonly socket: Socket, private readonly path: string, private readonly timeoutMs: number) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      try {
        this.replies.push(...this.reader.push(chunk));
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      this.deliver();
    });
    socket.on('error', (err) => this.fail(this.connectError(err)));
    socket.on('close', () => this.fail(new BirdError(`BIRD at ${this.path} closed the connection before answering`)));
  }

  static async open(path: string, timeoutMs: number): Promise<BirdConnection> {
    const conn = new BirdConnection(createConnection({ path }), path, timeoutMs);
    try {
      const hello = await conn.next('connecting');
      if (hello.code !== 1) throw new BirdError(`BIRD at ${path} greeted with ${hello.code} ${hello.text}`);
      conn.version = / (\d+\.\d+(?:\.\d+)?)/.exec(hello.text)?.[1] ?? '';
      return conn;
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  private connectError(err: NodeJS.ErrnoException): BirdError {
    const why = err.code === 'ENOENT' ? 'no such socket (is BIRD running?)'
      : err.code === 'ECONNREFUSED' ? 'connection refused (BIRD is not running)'
      : errnoText(err);
    return new BirdError(`BIRD control socket ${this.path}: ${why}`);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiting;
    if (w) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
    this.socket.destroy();
  }

  private deliver(): void {
    const w = this.waiting;
    if (w && this.replies.length) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.resolve(this.replies.shift()!);
    }
  }

  private next(what: string): Promise<Reply> {
    if (this.replies.length) return Promise.resolve(this.replies.shift()!);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new BirdError(`BIRD at ${this.path} did not answer ${what} within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.waiting = { resolve, reject, timer };
    });
  }

  /** Send one command (built here, never from outside text) and read its reply. */
  command(cmd: string): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    this.socket.write(`${cmd}\n`);
    return this.next(`'${cmd}'`);
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.on('error', () => undefined);
    this.socket.destroy();
  }
}

/** What `configure` answered: 0003 done, 0004 done once protocols being
 *  removed have stopped, 0005 queued behind another reconfiguration. Any
 *  other reply (8002 a config error, 0006 shutting down, 0016 restricted
 *  socket) is a refusal carrying BIRD's own message. */
export function configureOutcome(reply: Reply): 'reconfigured' | 'in progress' | 'queued' {
  switch (reply.code) {
    case 3: return 'reconfigured';
    case 4: return 'in progress';
    case 5: return 'queued';
    default: throw new BirdError(`BIRD refused to reconfigure: ${reply.text}`);
  }
}

export interface BgpSession {
  name: string;
  /** BIRD's protocol state: up, start, stop, down; `missing` when BIRD has
   *  no such protocol. */
  state: string;
  /** BIRD's info column, e.g. `Established` or `Active  Socket: Connection refused`. */
  info: string;
  since?: string;
  established: boolean;
  neighbor?: string;
  lastError?: string;
}

export interface BirdStatus {
  reachable: boolean;
  /** Why BIRD could not be asked, in one line. */
  error?: string;
  version?: string;
  sessions: BgpSession[];
}

/** A `show protocols all "<name>"` reply as a session. */
export function parseProtocol(name: string, reply: Reply): BgpSession {
  if (reply.code === 8003) return { name, state: 'missing', info: 'BIRD has no such protocol', established: false };
  if (reply.code >= 8000) return { name, state: 'unknown', info: reply.text, established: false };
  const row = reply.lines.find((l) => l.code === 1002);
  // `%-10s %-10s %-10s %-6s %-12s  %s`: name, protocol, table and state
  // have no spaces; the time may (`timeformat protocol iso long`), so it
  // ends at the first double space.
  const m = row && /^(\S+)\s+\S+\s+\S+\s+(\S+)\s+(.*?)(?: {2,}(.*))?$/.exec(row.text.trimEnd());
  if (!m) throw new BirdError(`unexpected answer from BIRD for protocol ${name}: ${shown(row?.text ?? reply.text)}`);
  const detail = (key: string) => {
    const l = reply.lines.find((x) => x.code === 1006 && x.text.trimStart().startsWith(`${key}:`));
    return l ? l.text.slice(l.text.indexOf(':') + 1).trim() : undefined;
  };
  const info = (m[4] ?? '').replace(/\s+/g, ' ').trim();
  const session: BgpSession = { name, state: m[2], info, established: m[2] === 'up' && info.startsWith('Established') };
  if (m[3]) session.since = m[3].trim();
  const neighbor = detail('Neighbor address');
  if (neighbor) session.neighbor = neighbor;
  const lastError = detail('Last error');
  if (lastError) session.lastError = lastError;
  return session;
}

// ---- the driver ----

export interface BirdDriverOptions {
  socket: string;
  includeFile: string;
  protocol: string;
  peers?: string[];
  /** Deadline of each socket operation (connect, greeting, each reply). */
  timeoutMs?: number;
}

export class BirdDriver {
  readonly options: Required<BirdDriverOptions>;
  /** The include file content BIRD last accepted from this driver. */
  private configured?: string;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: BirdDriverOptions) {
    this.options = { peers: [], timeoutMs: 5000, ...options };
    parseBgpConfig({
      bird_socket: options.socket, include_file: options.includeFile,
      static_protocol: options.protocol, peers: this.options.peers,
    }, 'BirdDriver');
  }

  /** Announce exactly `prefixes` (addresses or prefixes, IPv4 and IPv6):
   *  rewrite the include file if its content differs, then reconfigure
   *  BIRD unless it already accepted this content from this driver.
   *  `changed`: the file was rewritten; `reconfigured`: BIRD was asked.
   *  Bad prefixes reject before anything is written. */
  async announce(prefixes: readonly string[]): Promise<{ changed: boolean; reconfigured: boolean }> {
    const content = renderInclude(this.options.protocol, prefixes);
    return this.serialized(async () => {
      let current: string | undefined;
      try {
        current = await readFile(this.options.includeFile, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new BirdError(`cannot read ${this.options.includeFile}: ${errnoText(err)}`);
      }
      const changed = current !== content;
      if (changed) {
        this.configured = undefined;
        await writeAtomically(this.options.includeFile, content);
      }
      if (!changed && this.configured === content) return { changed, reconfigured: false };
      await this.configure();
      this.configured = content;
      return { changed, reconfigured: true };
    });
  }

  /** Announce nothing (the protocols stay, empty). */
  withdrawAll(): Promise<{ changed: boolean; reconfigured: boolean }> {
    return this.announce([]);
  }

  /** BIRD's version and the peers' sessions; never rejects: an unreachable
   *  BIRD is `reachable: false` with the reason in `error`. */
  async status(): Promise<BirdStatus> {
    let conn: BirdConnection | undefined;
    try {
      conn = await BirdConnection.open(this.options.socket, this.options.timeoutMs);
      const sessions: BgpSession[] = [];
      for (const name of this.options.peers) sessions.push(parseProtocol(name, await conn.command(`show protocols all "${name}"`)));
      return { reachable: true, version: conn.version, sessions };
    } catch (err) {
      return { reachable: false, error: (err as Error).message, sessions: [] };
    } finally {
      conn?.close();
    }
  }

  private async configure(): Promise<void> {
    const conn = await BirdConnection.open(this.options.socket, this.options.timeoutMs);
    try {
      configureOutcome(await conn.command('configure'));
    } finally {
      conn.close();
    }
  }

  /** One change at a time: a file write and its reconfigure are never interleaved with another's. */
  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
