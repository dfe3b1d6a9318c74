// What a backend needs for direct server return, checked where it runs
// (xdp-decap --check): every VIP an address of its own, so the kernel takes
// the client's packet as its own; reverse path filtering loose or off on
// the receiving interface, since the client's address arrives where the
// route back to it may not leave; for dsr-l2, ARP for the VIPs left to the
// balancer (arp_ignore 1, arp_announce 2); for ipip and gue, the
// decapsulator on the receiving interface (and GUE's port, for gue). All is
// read from the kernel: /proc/sys, /proc/net, the pinned maps.
import { readFileSync } from 'node:fs';
import { isLocal, localAddresses, type LocalAddresses } from '../lb/local.js';
import type { Tunnels } from './config.js';

export const CHECK_MODES = ['dsr-l2', 'ipip', 'gue'] as const;
export type CheckMode = (typeof CHECK_MODES)[number];

export interface Finding {
  check: 'vip_local' | 'rp_filter' | 'arp_ignore' | 'arp_announce' | 'decap';
  /** What it is about: a VIP or an interface. */
  subject: string;
  ok: boolean;
  detail: string;
  /** What to run when it is missing. */
  fix?: string;
}

export interface CheckResult {
  /** The mode checked for; `any`: what every DSR mode needs. */
  forwarding: CheckMode | 'any';
  vips: string[];
  interfaces: string[];
  ok: boolean;
  checks: Finding[];
}

/** What the checks read, so that they can be run on a made-up host. */
export interface CheckView {
  local: LocalAddresses;
  /** net.ipv4.conf.<iface>.<key> as a number; null when unreadable. */
  conf(iface: string, key: string): number | null;
  /** The decapsulator's settings on the interface; null where it does not run. */
  decap(iface: string): Tunnels | null;
}

export function hostView(decap: (iface: string) => Tunnels | null): CheckView {
  return {
    local: localAddresses(),
    conf(iface, key) {
      try {
        return Number(readFileSync(`/proc/sys/net/ipv4/conf/${iface}/${key}`, 'utf8').trim());
      } catch {
        return null;
      }
    },
    decap,
  };
}

const RP = ['off', 'strict', 'loose'];
// With the larger value in force, loose (2) on the interface is loose
// whatever `all` says: the fixes change the interface alone where they can.

/** The kernel uses the larger of `all` and the interface's value for these. */
function effective(view: CheckView, iface: string, key: string): { all: number; own: number; value: number } {
  const all = view.conf('all', key) ?? 0;
  const own = view.conf(iface, key) ?? 0;
  return { all, own, value: Math.max(all, own) };
}

const sysctl = (key: string, pairs: Array<[string, number]>) => `sysctl -w ${pairs.map(([at, v]) => `net.ipv4.conf.${at}.${key}=${v}`).join(' ')}`;

export function runChecks(vips: string[], forwarding: CheckMode | undefined, ifaces: string[], view: CheckView): CheckResult {
  const checks: Finding[] = [];
  const mode = forwarding ?? 'any';
  const v4 = vips.some((v) => !v.includes(':'));
  for (const vip of vips) {
    const ok = isLocal(vip, view.local);
    checks.push({
      check: 'vip_local', subject: vip, ok,
      detail: ok
        ? `VIP ${vip} is an address of this network namespace`
        : `VIP ${vip} is not an address of this network namespace: the kernel would not take the client's packets to it as its own`,
      ...(ok ? {} : { fix: `ip address add ${vip}/${vip.includes(':') ? 128 : 32} dev lo` }),
    });
  }
  for (const iface of ifaces) {
    // IPv6 has no reverse path filter, and a VIP on lo is never answered
    // for in neighbour discovery on another interface.
    if (!v4) continue;
    const rp = effective(view, iface, 'rp_filter');
    const rpOk = rp.value === 0 || rp.value === 2;
    checks.push({
      check: 'rp_filter', subject: iface, ok: rpOk,
      detail: `rp_filter on ${iface} is ${rp.value} (${RP[rp.value] ?? 'unknown'}; the larger of all ${rp.all} and ${iface} ${rp.own})` +
        (rpOk ? '' : ': strict filtering drops clients whose route back leaves by another interface'),
      ...(rpOk ? {} : { fix: sysctl('rp_filter', [[iface, 2]]) }),
    });
    if (mode === 'dsr-l2' || mode === 'any') {
      const ig = effective(view, iface, 'arp_ignore');
      const igOk = ig.value === 1 || ig.value === 2;
      checks.push({
        check: 'arp_ignore', subject: iface, ok: igOk,
        detail: `arp_ignore on ${iface} is ${ig.value} (the larger of all ${ig.all} and ${iface} ${ig.own})` +
          (igOk ? ': ARP for the VIPs on lo is left to the balancer' : ': this host answers ARP for its VIPs and takes their traffic from the balancer'),
        ...(igOk ? {} : { fix: sysctl('arp_ignore', [...(ig.all > 2 ? [['all', 1] as [string, number]] : []), ...(ig.own > 2 || ig.value === 0 ? [[iface, 1] as [string, number]] : [])]) }),
      });
      const an = effective(view, iface, 'arp_announce');
      const anOk = an.value === 2;
      checks.push({
        check: 'arp_announce', subject: iface, ok: anOk,
        detail: `arp_announce on ${iface} is ${an.value} (the larger of all ${an.all} and ${iface} ${an.own})` +
          (anOk ? '' : ': its ARP requests may name a VIP as their sender and teach neighbours this host\'s MAC for it'),
        ...(anOk ? {} : { fix: sysctl('arp_announce', [[iface, 2]]) }),
      });
    }
  }
  if (mode !== 'dsr-l2') {
    for (const iface of ifaces) {
      const t = view.decap(iface);
      const gueOff = (mode === 'gue' || mode === 'any') && t && !t.gue_port;
      const ok = !!t && !gueOff;
      const addrs = t ? [t.tunnel_ipv4, t.tunnel_ipv6].filter(Boolean).join(', ') : '';
      checks.push({
        check: 'decap', subject: iface, ok,
        detail: !t
          ? `xdp-decap is not attached to ${iface}: encapsulated packets would reach the kernel, which has no tunnel for them`
          : gueOff
            ? `xdp-decap on ${iface} takes no GUE (its GUE port is off)`
            : `xdp-decap on ${iface} takes tunnel packets to ${addrs}${t.gue_port ? `, GUE on port ${t.gue_port}` : ''}`,
        ...(ok ? {} : { fix: `xdp-decap --attach --interface ${iface}${gueOff ? ' --gue-port 6080' : ''}` }),
      });
    }
  }
  return { forwarding: mode, vips, interfaces: ifaces, ok: checks.every((c) => c.ok), checks };
}

export function formatChecks(r: CheckResult): string {
  const what = r.forwarding === 'any' ? 'any DSR mode' : r.forwarding;
  const failed = r.checks.filter((c) => !c.ok).length;
  return [
    `What this host needs as a backend of ${r.vips.join(', ')} (${what}) on ${r.interfaces.join(', ')}:`,
    ...r.checks.map((c) => `  ${c.ok ? 'ok     ' : 'MISSING'}  ${c.detail}${c.fix ? `; fix: ${c.fix}` : ''}`),
    failed ? `${failed} of ${r.checks.length} checks failed.` : `All ${r.checks.length} checks passed.`,
  ].join('\n');
}
