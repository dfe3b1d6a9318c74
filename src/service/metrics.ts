// Prometheus metrics over HTTP: `GET /metrics` on the configured address.
// Nothing is cached: every scrape asks each collector, and collectors read
// the kernel's maps there and then, so a scrape shows what `--status` would.
//
// A collector is a name and a function returning metric families: a
// subprogram contributes its counters by reading its maps and returning
// values with labels, and knows nothing of HTTP or of the exposition format
// (exposition.ts).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pkg from '../../package.json' with { type: 'json' };
import { XdplbError } from '../errors.js';
import { status, type InterfaceStatus } from '../root/status.js';
import { ACTIONS, type ActionCounts } from '../root/stats.js';
import { formatListen, type Listen } from './listen.js';
import { CONTENT_TYPE, Exposition, writeFamilies } from './exposition.js';
import { family, type Collector, type FamilySpec, type Labels, type MetricFamily, type Sample } from '../programs/contract.js';

export { DEFAULT_LISTEN, formatListen, parseListen, type Listen } from './listen.js';

/** The version the commands were built from (package.json). */
export const VERSION: string = pkg.version;

export type { Collector, FamilySpec, Labels, MetricFamily, Sample } from '../programs/contract.js';

const counter = (name: string, labels: string[], help: string): FamilySpec => ({ name, help, type: 'counter', labels });
const gauge = (name: string, labels: string[], help: string): FamilySpec => ({ name, help, type: 'gauge', labels });
const SLOT = ['interface', 'slot', 'program', 'action'];
const IFACE = ['interface', 'action'];

/** The metrics of the service itself and of the root arrays. */
export const SERVICE_FAMILIES = {
  build: gauge('xdplb_build_info', ['version', 'abi'], 'The xdplb serving these metrics: its version and the ABI version of the state it pins.'),
  success: gauge('xdplb_scrape_collector_success', ['collector'], 'Whether the collector read its metrics at this scrape (1) or failed (0).'),
  duration: gauge('xdplb_scrape_collector_duration_seconds', ['collector'], 'How long the collector took to read its metrics at this scrape.'),
  attached: gauge('xdplb_root_attached', ['interface', 'mode'], 'Whether the root array is attached to the interface (1), with its XDP mode, or not (0).'),
  mismatch: gauge('xdplb_slot_mask_mismatch', ['interface'], 'Whether the slot mask disagrees with the slots (1): a slot was changed by another tool.'),
  slotPackets: counter('xdplb_slot_packets_total', SLOT, 'Packets by the verdict the program in the slot gave, XDP_PASS included when it handed them on.'),
  slotBytes: counter('xdplb_slot_bytes_total', SLOT, 'Bytes by the verdict the program in the slot gave, XDP_PASS included when it handed them on.'),
  rootPackets: counter('xdplb_root_packets_total', IFACE, 'Packets that found every slot empty, by the root\'s verdict.'),
  rootBytes: counter('xdplb_root_bytes_total', IFACE, 'Bytes that found every slot empty, by the root\'s verdict.'),
  verdictPackets: counter('xdplb_verdict_packets_total', IFACE, 'Packets by final verdict: what the kernel did with them.'),
  verdictBytes: counter('xdplb_verdict_bytes_total', IFACE, 'Bytes by final verdict: what the kernel did with them.'),
} as const;
const F = SERVICE_FAMILIES;

export function buildInfoCollector(abi: number): Collector {
  return {
    name: 'build_info',
    families: () => [family(F.build, [{ labels: { version: VERSION, abi: String(abi) }, value: 1 }])],
  };
}

function perAction(labels: Labels, counts: ActionCounts): Sample[] {
  return ACTIONS.map((action) => ({ labels: { ...labels, action }, value: counts[action] }));
}

/** The root array's metrics, from `status()`'s answer: the same numbers
 *  `xdp-root --status --json` prints. Empty slots run nothing and count
 *  nothing, so only filled slots have series. */
export function rootFamilies(all: Record<string, InterfaceStatus>): MetricFamily[] {
  const attached: Sample[] = [];
  const mismatch: Sample[] = [];
  const slotPackets: Sample[] = [];
  const slotBytes: Sample[] = [];
  const rootPackets: Sample[] = [];
  const rootBytes: Sample[] = [];
  const verdictPackets: Sample[] = [];
  const verdictBytes: Sample[] = [];
  for (const [ifname, s] of Object.entries(all)) {
    const iface = { interface: ifname };
    if (!s.root_loaded) {
      attached.push({ labels: iface, value: 0 });
      continue;
    }
    attached.push({ labels: { ...iface, mode: s.mode }, value: 1 });
    mismatch.push({ labels: iface, value: s.slot_mask_mismatch ? 1 : 0 });
    for (const p of s.subprograms) {
      if (!p.prog_loaded) continue;
      const labels = { ...iface, slot: String(p.slot), program: p.name ?? '' };
      slotPackets.push(...perAction(labels, p.statistics));
      slotBytes.push(...perAction(labels, p.bytes));
    }
    rootPackets.push(...perAction(iface, s.root.statistics));
    rootBytes.push(...perAction(iface, s.root.bytes));
    verdictPackets.push(...perAction(iface, s.statistics));
    verdictBytes.push(...perAction(iface, s.bytes));
  }
  return [
    family(F.attached, attached),
    family(F.mismatch, mismatch),
    family(F.slotPackets, slotPackets),
    family(F.slotBytes, slotBytes),
    family(F.rootPackets, rootPackets),
    family(F.rootBytes, rootBytes),
    family(F.verdictPackets, verdictPackets),
    family(F.verdictBytes, verdictBytes),
  ];
}

/** The root arrays of the interfaces `interfaces()` names at each scrape
 *  (undefined: every interface with pins). */
export function rootCollector(interfaces: () => string[] | undefined): Collector {
  return { name: 'root', families: () => rootFamilies(status(interfaces())) };
}

export interface MetricsOptions {
  listen: Listen;
  collectors: Collector[];
  /** The per-prefix series limit the collectors were made with. */
  top?: number;
  /** Where a failing collector is reported (once per failed scrape). */
  log?: (line: string) => void;
}

export class MetricsServer {
  /** Scrapes one after another, as Prometheus makes them. */
  private last: Promise<unknown> = Promise.resolve();
  /** The size of the last exposition, to size the next one's buffer. */
  private lastBytes = 0;
  /** Buffers of sent expositions, written into again (see Exposition). */
  private spares = new WeakMap<Buffer, Buffer>();
  private spare: Buffer | undefined;

  private constructor(private readonly server: Server, private readonly opts: MetricsOptions) {}

  /** The address asked for (not the kernel's answer for port 0). */
  get listening(): Listen {
    return this.opts.listen;
  }

  get top(): number | undefined {
    return this.opts.top;
  }

  /** Listen on `opts.listen` (port 0: any free port, see address()). */
  static start(opts: MetricsOptions): Promise<MetricsServer> {
    const server = createServer();
    const metrics = new MetricsServer(server, opts);
    server.on('request', (req, res) => metrics.handle(req, res));
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const why: Record<string, string> = {
          EADDRINUSE: 'the address is already in use',
          EADDRNOTAVAIL: 'no interface of this host has that address',
          EACCES: 'permission denied',
        };
        reject(new XdplbError(`cannot serve metrics on ${formatListen(opts.listen)}: ${why[err.code ?? ''] ?? err.message}`));
      });
      server.listen({ host: opts.listen.host, port: opts.listen.port }, () => {
        server.removeAllListeners('error');
        resolve(metrics);
      });
    });
  }

  /** Where it listens, with the port the kernel chose for port 0. */
  address(): Listen {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** One scrape: every collector asked now, the exposition text (UTF-8). */
  scrape(): Promise<Buffer> {
    const next = this.last.then(() => this.render());
    this.last = next.catch(() => undefined);
    return next;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      // Prometheus keeps its connection open between scrapes.
      this.server.closeAllConnections();
    });
  }

  private async render(): Promise<Buffer> {
    const taken = new Set<string>(['xdplb_scrape_collector_success', 'xdplb_scrape_collector_duration_seconds']);
    const success: Sample[] = [];
    const duration: Sample[] = [];
    const body = new Exposition(this.lastBytes, this.spare);
    this.spare = undefined;
    for (const c of this.opts.collectors) {
      const start = process.hrtime.bigint();
      try {
        writeFamilies(c.families().filter((f) => f.samples.length), taken, body);
        success.push({ labels: { collector: c.name }, value: 1 });
      } catch (err) {
        this.opts.log?.(`metrics: collector ${c.name} failed: ${(err as Error).message}`);
        success.push({ labels: { collector: c.name }, value: 0 });
      }
      duration.push({ labels: { collector: c.name }, value: Number(process.hrtime.bigint() - start) / 1e9 });
    }
    writeFamilies([family(F.success, success), family(F.duration, duration)], new Set(), body);
    const bytes = body.bytes();
    this.lastBytes = bytes.length;
    this.spares.set(bytes, body.buffer);
    return bytes;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const path = (req.url ?? '').split('?')[0];
    const plain = (code: number, text: string, headers: Record<string, string> = {}) => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(req.method === 'HEAD' ? undefined : `${text}\n`);
    };
    if (path !== '/metrics') return plain(404, 'Not found: the metrics are at /metrics');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(405, 'Method not allowed: GET or HEAD', { Allow: 'GET, HEAD' });
    this.scrape().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': body.length });
        // Once the kernel has every byte, the buffer may be written again.
        res.on('finish', () => (this.spare = this.spares.get(body)));
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: Error) => plain(500, `Scrape failed: ${err.message}`),
    );
  }
}
