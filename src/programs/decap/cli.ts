// xdp-decap's own options and actions (attach, detach, status and run are
// every subprogram's; see src/cli/subprogram.ts): the tunnel settings
// --attach takes, and --check, what a backend is missing.
import { isIP } from 'node:net';
import { optional, required, type ActionSpec, type Args, type OptionSpec } from '../../command.js';
import { UsageError } from '../../errors.js';
import { toJson } from '../../format.js';
import { parseInterfaceList } from '../../net/interface.js';
import { programIfaces } from '../../root/place.js';
import { resolveIface } from '../../root/pins.js';
import type { Placed } from '../../root/place.js';
import type { AttachHook } from '../contract.js';
import { address } from '../lb/config.js';
import {
  describeTunnels, flagValue, guePort, readTunnels, sameTunnels, tunnelAddress, tunnelsFor, withDecapMaps, writeTunnels,
  type TunnelRequest,
} from './config.js';
import { CHECK_MODES, formatChecks, hostView, runChecks, type CheckMode } from './check.js';
import { DECAP } from './spec.js';

export const ATTACH_OPTIONS: OptionSpec[] = [
  { name: 'tunnel-ipv4', type: 'string', placeholder: 'ADDR|none', describe: 'The IPv4 address tunnel packets come to (default: the interface\'s primary IPv4 address)' },
  { name: 'tunnel-ipv6', type: 'string', placeholder: 'ADDR|none', describe: 'The IPv6 address tunnel packets come to (default: the interface\'s first global IPv6 address)' },
  { name: 'gue-port', type: 'string', placeholder: 'PORT', describe: 'UDP port of GUE; 0: no GUE (default 6080, as the balancer\'s gue_port)' },
];

export const OPTIONS: OptionSpec[] = [
  { name: 'vip', type: 'string', placeholder: 'ADDR[,ADDR...]', describe: 'With --check: the VIPs this host serves' },
  { name: 'forwarding', type: 'string', placeholder: 'dsr-l2|ipip|gue', describe: 'With --check: the VIPs\' forwarding (default: what any DSR mode needs)' },
];

function request(args: Args): TunnelRequest {
  const r: TunnelRequest = {};
  const v4 = optional(args, 'tunnel-ipv4');
  const v6 = optional(args, 'tunnel-ipv6');
  const port = optional(args, 'gue-port');
  if (v4 !== undefined) r.tunnel_ipv4 = flagValue('tunnel-ipv4', v4, (t) => tunnelAddress(t, 4));
  if (v6 !== undefined) r.tunnel_ipv6 = flagValue('tunnel-ipv6', v6, (t) => tunnelAddress(t, 6));
  if (port !== undefined) r.gue_port = flagValue('gue-port', port, guePort);
  return r;
}

export const ATTACH: AttachHook<TunnelRequest> = {
  options: ATTACH_OPTIONS,
  parse: request,
  // A newly placed decapsulator takes the interface's own addresses for
  // what was not given; one already there changes only what was given.
  configure(placed: Placed[], r) {
    const plans = placed.map((p) => withDecapMaps(p.iface, (maps) => {
      const held = readTunnels(maps);
      return { p, held, want: tunnelsFor(p.iface, r, p.changed ? undefined : held) };
    }));
    return plans.map(({ p, held, want }) => {
      if (p.changed || !sameTunnels(held, want)) withDecapMaps(p.iface, (maps) => writeTunnels(maps, want));
      return { json: { configuration: want }, text: describeTunnels(want) };
    });
  },
  // What can be told without the VIPs: the rest is --check's.
  warnings(placed) {
    const view = hostView(() => null);
    return placed.flatMap(({ iface }) => {
      const rp = Math.max(view.conf('all', 'rp_filter') ?? 0, view.conf(iface.name, 'rp_filter') ?? 0);
      return rp === 1
        ? [`rp_filter on ${iface.name} is strict (1): decapsulated packets from clients whose route back leaves by another interface are dropped; ` +
            `sysctl -w net.ipv4.conf.${iface.name}.rp_filter=2 (and see xdp-decap --check --vip ...)`]
        : [];
    });
  },
};

interface CheckRequest {
  vips: string[];
  forwarding?: CheckMode;
  ifaces?: string[];
}

function vipList(text: string): string[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => !isIP(s))) {
    throw new UsageError(`invalid --vip '${text}': expected addresses separated by commas, like 10.0.0.10,fd00::10`);
  }
  return [...new Set(items.map((a) => address(a, 'vip')))];
}

export const ACTIONS: Array<ActionSpec<any>> = [
  {
    name: 'check',
    describe: 'Say what this host lacks as a backend of the VIPs (exit 1 if anything): the VIPs local, rp_filter, ARP sysctls, the decapsulator',
    requires: ['vip'],
    accepts: ['forwarding', 'interface'],
    usage: ['--check --vip ADDR[,ADDR...] [--forwarding dsr-l2|ipip|gue] [--interface IFNAME[,IFNAME...]]'],
    parse(args): CheckRequest {
      const fwd = optional(args, 'forwarding');
      if (fwd !== undefined && !(CHECK_MODES as readonly string[]).includes(fwd)) {
        throw new UsageError(`invalid --forwarding '${fwd}': expected dsr-l2, ipip or gue (a NAT backend needs none of this)`);
      }
      const ifText = optional(args, 'interface');
      return { vips: vipList(required(args, 'vip')), forwarding: fwd as CheckMode | undefined, ifaces: ifText === undefined ? undefined : parseInterfaceList(ifText) };
    },
    run(req: CheckRequest, ctx) {
      // The receiving interfaces: as given, else where the decapsulator runs.
      const ifaces = req.ifaces ?? programIfaces(DECAP).map((p) => p.iface.name);
      if (!ifaces.length) throw new UsageError('--check needs --interface here: xdp-decap runs on no interface of this network namespace to take it from');
      for (const name of ifaces) resolveIface(name);
      const running = new Map(programIfaces(DECAP).map((p) => [p.iface.name, p.iface]));
      const view = hostView((name) => {
        const iface = running.get(name);
        return iface ? withDecapMaps(iface, readTunnels) : null;
      });
      const r = runChecks(req.vips, req.forwarding, ifaces, view);
      ctx.print(ctx.json ? toJson(r) : formatChecks(r));
      return r.ok ? 0 : 1;
    },
  },
];
