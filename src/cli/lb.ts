// xdp-lb: the L4 load balancer in a slot of the root array: attach it, apply
// a config (whole file or small edits), show VIPs, backends and counters.
import { RUN_DESCRIPTION, RUN_OPTION, runRequest, runSection } from './run.js';
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { UsageError } from '../errors.js';
import { parseInterfaceList } from '../net/interface.js';
import { parseSlot } from '../root/slot.js';
import { attachSubprogram, detachSubprogram } from '../root/subprogram.js';
import { parseConfig, vipName, address, type LbConfig } from '../programs/lb/config.js';
import { editConfig, parseBackendRefs, parseVipRef, parseWeight, type Edit } from '../programs/lb/edit.js';
import { LB_SPEC } from '../programs/lb/spec.js';
import { applyConfig, readState, type ApplyResult } from '../programs/lb/state.js';
import { checkPinnedLayout, closeLbMaps, requireLbMaps } from '../programs/lb/pins.js';
import { lbStatus, type LbStatus } from '../programs/lb/status.js';
import { isPrime } from '../programs/lb/maglev.js';
import { table, toJson } from './format.js';
import { EXIT_OK, finishParser, requirePrivileges } from './main.js';

export const COMMAND = 'xdp-lb';
const EDITS = ['vip-add', 'vip-del', 'backend-add', 'backend-del'] as const;
const ACTIONS = ['attach', 'detach', 'apply', 'status', ...EDITS] as const;

export function parser(args: string[]) {
  return finishParser(
    yargs(args)
      .scriptName(COMMAND)
      .usage(
        [
          'Usage:',
          '  xdp-lb --attach --interface eth0[,eth1] [--slot 7]',
          '  xdp-lb --detach --interface eth0[,eth1]',
          '  xdp-lb --apply FILE',
          '  xdp-lb --status [--interface eth0] [--json]',
          '  xdp-lb --vip-add tcp:10.0.0.10:8000 --backend 10.0.0.2,10.0.0.3:8080 [--weight N] [--nat-source 10.0.0.10] [--table-size P]',
          '  xdp-lb --vip-del tcp:10.0.0.10:8000',
          '  xdp-lb --backend-add tcp:10.0.0.10:8000 --backend 10.0.0.4 [--weight N]',
          '  xdp-lb --backend-del tcp:10.0.0.10:8000 --backend 10.0.0.4',
          '  xdp-lb --weight N --vip tcp:10.0.0.10:8000 --backend 10.0.0.4',
          '',
          'VIPs (address, port, tcp or udp) go to weighted backends chosen by Maglev',
          'hashing, with connection tracking and NAT. The config is shared by every',
          'interface the balancer is attached to; see README.md for the JSON format.',
        ].join('\n'),
      )
      .options({
        attach: { type: 'boolean', describe: 'Put the balancer into a slot of the interfaces\' root arrays' },
        detach: { type: 'boolean', describe: 'Take it out (its config goes with the last interface)' },
        apply: { type: 'string', describe: 'Apply a whole JSON config: checked first, only the difference written' },
        status: { type: 'boolean', describe: 'Show VIPs, backends, counters and table fill' },
        'vip-add': { type: 'string', describe: 'Add a VIP (with --backend)' },
        'vip-del': { type: 'string', describe: 'Remove a VIP' },
        'backend-add': { type: 'string', describe: 'Add backends (--backend) to a VIP' },
        'backend-del': { type: 'string', describe: 'Remove backends (--backend) from a VIP; their flows finish' },
        weight: { type: 'string', describe: 'Weight of the backends (0 drains); alone with --vip and --backend, change it' },
        vip: { type: 'string', describe: 'The VIP whose backends --weight changes' },
        backend: { alias: 'b', type: 'string', describe: 'Backend(s), ADDRESS[:PORT], comma separated' },
        'nat-source': { type: 'string', describe: 'With --vip-add: the NAT source address of the VIP\'s family' },
        'table-size': { type: 'string', describe: 'With --vip-add: Maglev table size, a prime (default 65537)' },
        interface: { alias: 'i', type: 'string', describe: 'Interface name(s), comma separated' },
        slot: { alias: 's', type: 'string', describe: `Slot number, 0..7 (default ${LB_SPEC.defaultSlot})` },
        json: { alias: 'j', type: 'boolean', describe: 'Print JSON' },
      })
      .options(RUN_OPTION)
      .command('run', RUN_DESCRIPTION),
    COMMAND,
  );
}

type Args = Awaited<ReturnType<ReturnType<typeof parser>['parse']>>;

function one(argv: Args, name: string, action: string): string {
  const value = (argv as Record<string, unknown>)[name];
  if (value === undefined || value === '') throw new UsageError(`--${action} needs --${name}`);
  if (Array.isArray(value)) throw new UsageError(`--${name} given more than once: expected one value`);
  return String(value);
}

type Request =
  | { action: 'attach'; ifaces: string[]; slot: number }
  | { action: 'detach'; ifaces: string[] }
  | { action: 'apply'; file: string; config: LbConfig }
  | { action: 'status'; ifaces?: string[] }
  | { action: 'edit'; edit: Edit };

/** Check the whole request (the config file included) before anything
 *  touches the kernel. */
export function validate(argv: Args): Request {
  const a = argv as Record<string, unknown>;
  let chosen: string[] = ACTIONS.filter((x) => a[x] !== undefined && a[x] !== false);
  if (!chosen.length && a.weight !== undefined) chosen = ['weight'];
  if (chosen.length !== 1) {
    throw new UsageError(
      chosen.length
        ? `choose one of --${ACTIONS.join(', --')}, --weight; got --${chosen.join(' and --')}`
        : `nothing to do: expected one of --${ACTIONS.join(', --')}, --weight (see xdp-lb --help)`,
    );
  }
  const action = chosen[0];
  const ifaces = () => parseInterfaceList(one(argv, 'interface', action));
  const weight = () => (a.weight === undefined ? 1 : parseWeight(one(argv, 'weight', action)));
  switch (action) {
    case 'attach':
      return { action, ifaces: ifaces(), slot: a.slot === undefined ? LB_SPEC.defaultSlot : parseSlot(one(argv, 'slot', action)) };
    case 'detach':
      return { action, ifaces: ifaces() };
    case 'status':
      return { action, ifaces: a.interface === undefined ? undefined : ifaces() };
    case 'apply': {
      const file = one(argv, 'apply', action);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read config file '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      return { action, file, config: parseConfig(text, file) };
    }
    case 'vip-add': {
      const sizeText = a['table-size'] === undefined ? undefined : one(argv, 'table-size', action);
      const tableSize = sizeText === undefined ? undefined : Number(sizeText);
      if (sizeText !== undefined && (!/^\d+$/.test(sizeText) || !isPrime(tableSize!) || tableSize! > 1048573)) {
        throw new UsageError(`invalid table size '${sizeText}': expected a prime number up to 1048573, such as 65537`);
      }
      const nat = a['nat-source'] === undefined ? undefined : one(argv, 'nat-source', action);
      const natSource = nat === undefined ? undefined : wrapNat(nat);
      return {
        action: 'edit',
        edit: { kind: 'vip-add', vip: parseVipRef(one(argv, 'vip-add', action)), backends: parseBackendRefs(one(argv, 'backend', action)), weight: weight(), tableSize, natSource },
      };
    }
    case 'vip-del':
      return { action: 'edit', edit: { kind: 'vip-del', vip: parseVipRef(one(argv, 'vip-del', action)) } };
    case 'backend-add':
      return { action: 'edit', edit: { kind: 'backend-add', vip: parseVipRef(one(argv, 'backend-add', action)), backends: parseBackendRefs(one(argv, 'backend', action)), weight: weight() } };
    case 'backend-del':
      return { action: 'edit', edit: { kind: 'backend-del', vip: parseVipRef(one(argv, 'backend-del', action)), backends: parseBackendRefs(one(argv, 'backend', action)) } };
    default:
      return { action: 'edit', edit: { kind: 'weight', vip: parseVipRef(one(argv, 'vip', 'weight')), backends: parseBackendRefs(one(argv, 'backend', 'weight')), weight: parseWeight(one(argv, 'weight', 'weight')) } };
  }
}

function wrapNat(text: string): string {
  try {
    return address(text, 'nat-source');
  } catch {
    throw new UsageError(`invalid NAT source '${text}': expected an IPv4 or IPv6 address`);
  }
}

const COUNTERS = [
  ['PACKETS', 'packets'], ['BYTES', 'bytes'], ['REPLIES', 'reply_packets'], ['NEW CONNS', 'new_conns'],
  ['CT MISSES', 'conn_misses'], ['NO BACKEND', 'no_backend'], ['NAT EXHAUSTED', 'nat_exhausted'],
  ['FIB NO NEIGH', 'fib_no_neigh'], ['FIB FAILED', 'fib_failures'], ['ICMP ERRORS', 'icmp_errors'],
] as const;

export function formatStatus(s: LbStatus): string {
  if (!s.loaded) return 'Load balancer not attached to any interface.';
  const where = Object.entries(s.interfaces).map(([i, p]) => `${i} (slot ${p.slot}, id ${p.id})`);
  const nat = [s.nat.source_ipv4, s.nat.source_ipv6].filter(Boolean).join(', ') || '(none)';
  const rows: Array<Array<string | number | bigint>> = [];
  for (const v of s.vips) {
    rows.push([vipName(v), `table ${v.table_size}`, ...COUNTERS.map(([, k]) => v.counters[k])]);
    for (const b of v.backends) {
      const name = `  ${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}${b.mac ? ` (${b.mac})` : ''}`;
      rows.push([name, b.removed ? 'removed' : `weight ${b.weight}`, ...COUNTERS.map(([, k]) => (k === 'packets' || k === 'bytes' || k === 'reply_packets' || k === 'new_conns' ? b.counters[k] : ''))]);
    }
  }
  return [
    `Load balancer on ${where.join(', ') || '(no interface given)'}`,
    `NAT source ${nat}, ports ${s.nat.port_min}-${s.nat.port_max}; connections ${s.connections}/${s.connections_max}, NAT ports in use ${s.nat_ports}/${s.nat_ports_max}`,
    s.vips.length ? table(['VIP / BACKEND', '', ...COUNTERS.map(([h]) => h)], rows) : 'No VIPs configured.',
  ].join('\n');
}

function describeApply(r: ApplyResult): string {
  const parts = [
    r.vips_added && `${r.vips_added} VIP(s) added`,
    r.vips_removed && `${r.vips_removed} removed`,
    r.vips_changed && `${r.vips_changed} changed`,
    r.tables_written && `${r.tables_written} Maglev table(s) swapped`,
    r.backends_written && `${r.backends_written} backend entries written`,
  ].filter(Boolean);
  return parts.length ? `Applied: ${parts.join(', ')}.` : 'Nothing to change: the kernel already holds this config.';
}

export async function main(args: string[]): Promise<number> {
  const argv = await parser(args).parse();
  const config = runRequest(COMMAND, argv, ACTIONS);
  if (config !== null) return runSection(COMMAND, config, async () => (await import('../programs/lb/service.js')).LB_SERVICE);
  const req = validate(argv);
  requirePrivileges();
  const print = (text: string) => process.stdout.write(`${text}\n`);
  switch (req.action) {
    case 'attach': {
      checkPinnedLayout();
      const results = req.ifaces.map((i) => attachSubprogram(i, LB_SPEC, req.slot));
      for (const r of results) for (const w of forwardingWarnings(r.ifname)) process.stderr.write(`${COMMAND}: warning: ${w}\n`);
      if (argv.json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { slot: r.slot, id: r.id, changed: r.changed }]))));
      else for (const r of results) print(r.changed ? `Attached xdp_lb to ${r.ifname} in slot ${r.slot} (id ${r.id}).` : `xdp_lb already in slot ${r.slot} of ${r.ifname}.`);
      return EXIT_OK;
    }
    case 'detach': {
      const results = req.ifaces.map((i) => ({ ifname: i, removed: detachSubprogram(i, LB_SPEC) }));
      if (argv.json) print(toJson(Object.fromEntries(results.map((r) => [r.ifname, { detached: r.removed }]))));
      else for (const r of results) print(r.removed ? `Detached xdp_lb from ${r.ifname}.` : `xdp_lb is not attached to ${r.ifname}; nothing to detach.`);
      return EXIT_OK;
    }
    case 'status': {
      const s = lbStatus(req.ifaces);
      print(argv.json ? toJson(s) : formatStatus(s));
      return EXIT_OK;
    }
    case 'apply':
    case 'edit': {
      const fds = requireLbMaps();
      try {
        const have = readState(fds);
        const config = req.action === 'apply' ? req.config : editConfig(have.config, req.edit);
        const r = applyConfig(fds, config, have);
        print(argv.json ? toJson(r) : describeApply(r));
      } finally {
        closeLbMaps(fds);
      }
      return EXIT_OK;
    }
  }
  return EXIT_OK;
}

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
