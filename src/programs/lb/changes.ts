// What an apply changed, in words: one line per VIP, backend or setting,
// naming it (what the service logs on a start or reload). A pure function
// of the config the kernel held and the one written. And what it cost
// stateless VIPs' chaining (chainWarnings), for the CLI and the service.
import { vipName, type BackendConfig, type LbConfig } from './config.js';
import { CHAIN_GENS } from './layout.js';
import type { ApplyResult } from './plan.js';

const show = (v: unknown) => (v === undefined ? 'none' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const hostPort = (b: BackendConfig) => `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}`;

/** `key old -> new` for each key of two flat objects that differs (`skip` aside). */
function settings(prefix: string, a: object, b: object, skip: readonly string[] = []): string[] {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => !skip.includes(k));
  return keys.filter((k) => show(x[k]) !== show(y[k])).map((k) => `${prefix}${k} ${show(x[k])} -> ${show(y[k])}`);
}

/** Keys of a VIP that are not settings: its identity, backends, and health
 *  (the control plane's alone: never written to the kernel). */
const VIP_IDENTITY = ['address', 'port', 'protocol', 'backends', 'health'] as const;

export function describeChanges(before: LbConfig, after: LbConfig): string[] {
  const lines = [...settings('nat.', before.nat, after.nat), ...settings('timeouts.', before.timeouts, after.timeouts)];
  const held = new Map(before.vips.map((v) => [vipName(v), v]));
  const wanted = new Set(after.vips.map(vipName));
  for (const v of after.vips) {
    const name = vipName(v);
    const old = held.get(name);
    if (!old) {
      lines.push(`vip ${name} added (${v.backends.length} backends, ${v.forwarding ?? 'nat'})`);
      continue;
    }
    // A NAT VIP names no forwarding.
    lines.push(...settings(`vip ${name} `, { forwarding: 'nat', ...old }, { forwarding: 'nat', ...v }, VIP_IDENTITY));
    const had = new Map(old.backends.map((b) => [hostPort(b), b]));
    for (const b of v.backends) {
      const was = had.get(hostPort(b));
      had.delete(hostPort(b));
      if (!was) lines.push(`vip ${name} backend ${hostPort(b)} added`);
      else lines.push(...settings(`vip ${name} backend ${hostPort(b)} `, was, b, ['address', 'port', 'health']));
    }
    for (const b of had.values()) lines.push(`vip ${name} backend ${hostPort(b)} removed`);
  }
  for (const v of before.vips) if (!wanted.has(vipName(v))) lines.push(`vip ${vipName(v)} removed`);
  return lines;
}

/** What an apply's chaining report (ApplyResult.chaining) says, a line
 *  per VIP and kind of loss. */
export function chainWarnings(r: ApplyResult): string[] {
  return (r.chaining ?? []).flatMap((c) => [
    ...(c.lost ? [`vip ${c.vip}: ${c.lost} entries changed again within the chaining window: their flows from before the previous change are no longer chained`] : []),
    ...(c.evicted ? [`vip ${c.vip}: ${c.evicted} entries lost their previous backend early (more than ${CHAIN_GENS} changes within the chaining window): their flows from before that change are no longer chained`] : []),
  ]);
}
