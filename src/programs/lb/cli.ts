// xdp-lb's own options and actions (attach, detach, status and run are
// every subprogram's; see src/cli/subprogram.ts): a whole config from a
// file, small edits, and purging the namespace's state.
import { readFileSync } from 'node:fs';
import { optional, required, type ActionContext, type ActionSpec, type Args, type OptionSpec } from '../../command.js';
import { UsageError } from '../../errors.js';
import { formatTime, table, toJson } from '../../format.js';
import type { AttachHook } from '../contract.js';
import { parseConfig, vipName, address, type LbConfig } from './config.js';
import { editConfig, parseBackendRefs, parseVipRef, parseWeight, type Edit } from './edit.js';
import { isPrime } from './maglev.js';
import { vipWarnings } from './local.js';
import { chainWarnings } from './changes.js';
import { checkDsrL2 } from './reach.js';
import { purgeLbState, withLbState } from './pins.js';
import { applyConfig, expireChaining } from './apply.js';
import type { ApplyResult } from './plan.js';
import { readState } from './state.js';
import type { LbStatus } from './status.js';
import { healthText } from './health.js';
import { rateAt, withRate, type RateTree } from '../../rates.js';

export const OPTIONS: OptionSpec[] = [
  { name: 'weight', type: 'string', placeholder: 'N', describe: 'Weight of the backends (0 drains: no new flows); alone with --vip and --backend, change it' },
  { name: 'vip', type: 'string', placeholder: 'PROTO:ADDR:PORT', describe: 'The VIP whose backends --weight changes' },
  { name: 'backend', alias: 'b', type: 'string', placeholder: 'ADDR[:PORT][,...]', describe: 'Backend(s), comma separated; each with a port or none (then the VIP\'s)' },
  { name: 'nat-source', type: 'string', placeholder: 'ADDR', describe: 'With --vip-add: the NAT source address of the VIP\'s family' },
  { name: 'table-size', type: 'string', placeholder: 'P', describe: 'With --vip-add: Maglev table size, a prime (default 65537)' },
];

/** The FIB lookup needs forwarding on the interface; passing a packet whose
 *  neighbour is unresolved up to the kernel needs accept_local as well
 *  (its source is the balancer's own address). */
function forwardingWarnings(ifname: string): string[] {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const out: string[] = [];
  if (read(`/proc/sys/net/ipv4/conf/${ifname}/forwarding`) === '0') {
    out.push(`net.ipv4.conf.${ifname}.forwarding is 0: IPv4 FIB lookups fail and VIP packets are dropped; enable forwarding`);
  }
  if (read(`/proc/sys/net/ipv4/conf/${ifname}/accept_local`) === '0') {
    out.push(`net.ipv4.conf.${ifname}.accept_local is 0: the first packet to a backend whose neighbour is unresolved is dropped by the kernel`);
  }
  return out;
}

export const ATTACH: AttachHook<null> = {
  options: [],
  parse: () => null,
  configure: (placed) => placed.map(() => ({ json: {}, text: '' })),
  warnings: (placed) => placed.flatMap((p) => forwardingWarnings(p.iface.name)),
};

export function describeApply(r: ApplyResult): string {
  const parts = [
    r.vips_added && `${r.vips_added} VIP(s) added`,
    r.vips_removed && `${r.vips_removed} removed`,
    r.vips_changed && `${r.vips_changed} changed`,
    r.tables_written && `${r.tables_written} Maglev table(s) swapped`,
    r.backends_written && `${r.backends_written} backend entries written`,
  ].filter(Boolean);
  return parts.length ? `Applied: ${parts.join(', ')}.` : 'Nothing to change: the kernel already holds this config.';
}

const COUNTERS = [
  ['PACKETS', 'packets'], ['BYTES', 'bytes'], ['REPLIES', 'reply_packets'], ['NEW CONNS', 'new_conns'],
  ['CT MISSES', 'conn_misses'], ['NO BACKEND', 'no_backend'], ['NAT EXHAUSTED', 'nat_exhausted'],
  ['FIB NO NEIGH', 'fib_no_neigh'], ['FIB FAILED', 'fib_failures'], ['ICMP ERRORS', 'icmp_errors'],
  ['BAD CHECKSUM', 'bad_checksum'], ['ENCAPSULATED', 'encapsulated'], ['TOO BIG', 'too_big'], ['ICMP FORWARDED', 'icmp_forwarded'],
] as const;
const PER_BACKEND = new Set(['packets', 'bytes', 'reply_packets', 'new_conns']);

export function formatStatus(s: LbStatus, rates?: RateTree): string {
  if (!s.loaded) return 'Load balancer not attached to any interface in this network namespace.';
  const where = Object.entries(s.interfaces).map(([i, p]) => `${i} (slot ${p.slot}, id ${p.id})`);
  const nat = [s.nat.source_ipv4, s.nat.source_ipv6].filter(Boolean).join(', ') || '(none)';
  const rows: Array<Array<string | number | bigint>> = [];
  // With --watch, rates beside the totals (bytes as bits per second).
  const cell = (c: Record<string, bigint>, path: Array<string | number>, k: string) => {
    const unit = k.endsWith('bytes') ? 'bit/s' : k.endsWith('packets') ? 'pps' : '/s';
    const rateKey = k.endsWith('bytes') ? k.replace(/bytes$/, 'bits') : k;
    return withRate(c[k], rateAt(rates, ...path, 'counters', rateKey), unit);
  };
  // Health and announcements only when a service published them.
  const health = s.service ? [''] : [];
  const now = new Date();
  s.vips.forEach((v, i) => {
    const st = v.stateless;
    const dropped = st && st.lost + st.evicted ? `, its last change unchained ${st.lost + st.evicted} entries inside their window` : '';
    const table = `${v.forwarding}, table ${v.table_size}${st ? `, stateless: ${st.chained} chained, generation ${st.generation}${dropped}` : ''}`;
    if (health.length) {
      const announced = v.announced === null || v.announced === undefined ? '' : v.announced ? ', announced' : ', not announced';
      health[0] = v.healthy === null || v.healthy === undefined ? '' : `${v.healthy}/${v.backends.filter((b) => !b.removed).length} healthy${announced}`;
    }
    rows.push([vipName(v), table, ...health, ...COUNTERS.map(([, k]) => cell(v.counters, ['vips', i], k))]);
    v.backends.forEach((b, j) => {
      const name = `  ${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}${b.mac ? ` (${b.mac})` : ''}`;
      if (health.length) health[0] = b.health ? healthText({ health: b.health, since: b.since ? new Date(b.since) : null, last_error: b.last_error ?? null }, now) : '';
      rows.push([name, b.removed ? 'removed' : `weight ${b.weight}`, ...health, ...COUNTERS.map(([, k]) => (PER_BACKEND.has(k) ? cell(b.counters, ['vips', i, 'backends', j], k) : ''))]);
    });
  });
  return [
    s.orphan
      ? 'Load balancer state pinned but attached to no interface (kept for the next attach; xdp-lb --purge removes it)'
      : `Load balancer on ${where.join(', ')}`,
    `NAT source ${nat}, ports ${s.nat.port_min}-${s.nat.port_max}; connections ${s.connections}/${s.connections_max}, NAT ports in use ${s.nat_ports}/${s.nat_ports_max}`,
    s.vips.length ? table(['VIP / BACKEND', '', ...(health.length ? ['HEALTH'] : []), ...COUNTERS.map(([h]) => h)], rows) : 'No VIPs configured.',
    ...s.vips.filter((v) => v.forwarding === 'ipip' || v.forwarding === 'gue').map((v) => {
      const from = [v.encap_source_ipv4, v.encap_source_ipv6].filter(Boolean).join(', ');
      return `${vipName(v)}: ${v.forwarding}${v.gue_port ? ` to port ${v.gue_port}` : ''}, outer source ${from}`;
    }),
    ...serviceLines(s),
  ].join('\n');
}

/** Who published the health column, and what BIRD announces. */
function serviceLines(s: LbStatus & { loaded: true }): string[] {
  const svc = s.service;
  if (!svc) return [];
  const lines = [svc.running
    ? `Health and announcements from xdp-lb run (pid ${svc.pid}), updated ${formatTime(new Date(svc.updated))}${svc.attached === false ? '; the balancer is not in its slot on every interface' : ''}`
    : `STALE: xdp-lb run (pid ${svc.pid}) is not running; health and announcements as it last published them, ${formatTime(new Date(svc.updated))}`];
  const bgp = s.bgp;
  if (!bgp) {
    lines.push('BGP: not announcing (no "bgp" in the config)');
    return lines;
  }
  const accepted = bgp.accepted === null ? 'unknown' : bgp.accepted.length ? bgp.accepted.join(', ') : 'nothing';
  lines.push(bgp.error
    ? `BGP: ${bgp.error} (wanted: ${bgp.wanted.join(', ') || 'nothing'})`
    : `BGP: BIRD${bgp.version ? ` ${bgp.version}` : ''} at ${bgp.socket} announces ${accepted} (${bgp.include_file})`);
  for (const p of bgp.sessions) {
    const since = p.since ? ` since ${p.since}` : '';
    const err = p.lastError ? `, last error: ${p.lastError}` : '';
    lines.push(`  session ${p.name}: ${p.state}${p.info ? `, ${p.info}` : ''}${since}${p.neighbor ? `, neighbor ${p.neighbor}` : ''}${err}`);
  }
  return lines;
}

function applyAndReport(change: (current: LbConfig | null) => LbConfig, ctx: ActionContext): void {
  let applied: LbConfig | undefined;
  const r = withLbState((maps) => {
    const have = readState(maps);
    applied = change(have.config);
    checkDsrL2(applied);
    const result = applyConfig(maps, applied, have);
    // With no service running, nothing else ends chaining whose window is over.
    expireChaining(maps);
    return result;
  });
  for (const line of vipWarnings(applied!)) ctx.warn(line);
  for (const line of chainWarnings(r)) ctx.warn(line);
  ctx.print(ctx.json ? toJson(r) : describeApply(r));
}

const weight = (args: Args) => (optional(args, 'weight') === undefined ? 1 : parseWeight(required(args, 'weight')));

function natSource(args: Args): string | undefined {
  const text = optional(args, 'nat-source');
  if (text === undefined) return undefined;
  try {
    return address(text, 'nat-source');
  } catch {
    throw new UsageError(`invalid --nat-source '${text}': expected an IPv4 or IPv6 address`);
  }
}

function tableSize(args: Args): number | undefined {
  const text = optional(args, 'table-size');
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !isPrime(n) || n > 1048573) {
    throw new UsageError(`invalid --table-size '${text}': expected a prime number up to 1048573, such as 65537`);
  }
  return n;
}

const edit = (name: string, describe: string, extra: Partial<ActionSpec<Edit>>, parse: (args: Args) => Edit): ActionSpec<Edit> => ({
  name, kind: 'value', placeholder: 'PROTO:ADDR:PORT', describe, parse,
  run: (e, ctx) => applyAndReport((current) => editConfig(current!, e), ctx),
  ...extra,
});

export const ACTIONS: Array<ActionSpec<any>> = [
  {
    name: 'apply',
    kind: 'value',
    placeholder: 'FILE',
    describe: 'Apply a whole JSON config: checked first, only the difference written',
    parse(args) {
      const file = required(args, 'apply');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read config file '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      return parseConfig(text, file, (c) => checkDsrL2(c));
    },
    run: (config: LbConfig, ctx) => applyAndReport(() => config, ctx),
  },
  edit('vip-add', 'Add a VIP with its backends', { requires: ['backend'], accepts: ['weight', 'nat-source', 'table-size'] },
    (a) => ({ kind: 'vip-add', vip: parseVipRef(required(a, 'vip-add')), backends: parseBackendRefs(required(a, 'backend')), weight: weight(a), tableSize: tableSize(a), natSource: natSource(a) })),
  edit('vip-del', 'Remove a VIP', {}, (a) => ({ kind: 'vip-del', vip: parseVipRef(required(a, 'vip-del')) })),
  edit('backend-add', 'Add backends to a VIP', { requires: ['backend'], accepts: ['weight'] },
    (a) => ({ kind: 'backend-add', vip: parseVipRef(required(a, 'backend-add')), backends: parseBackendRefs(required(a, 'backend')), weight: weight(a) })),
  edit('backend-del', 'Remove backends from a VIP; their established flows finish', { requires: ['backend'] },
    (a) => ({ kind: 'backend-del', vip: parseVipRef(required(a, 'backend-del')), backends: parseBackendRefs(required(a, 'backend')) })),
  {
    ...edit('weight', 'Change backends\' weight (0 drains: no new flows, established ones stay)', { requires: ['vip', 'backend'] },
      (a) => ({ kind: 'weight', vip: parseVipRef(required(a, 'vip')), backends: parseBackendRefs(required(a, 'backend')), weight: parseWeight(required(a, 'weight')) })),
    placeholder: 'N',
  },
  {
    name: 'purge',
    describe: 'Remove the load balancer\'s state in this network namespace (VIPs, connections, NAT ports); it must be detached everywhere',
    parse: () => null,
    run(_req, ctx) {
      const removed = purgeLbState();
      if (ctx.json) ctx.print(toJson({ purged: removed }));
      else ctx.print(removed ? 'Removed the load balancer state of this network namespace.' : 'No load balancer state in this network namespace; nothing to purge.');
    },
  },
];
