// Small edits for operators without a file: a VIP or a backend named on the
// command line, added, removed or re-weighted in the config read back from
// the kernel; the result is validated whole and applied like a file.
import { UsageError } from '../../errors.js';
import { address, port, protocol, vipName, weight as checkWeight, validateConfig, type LbConfig } from './config.js';
import { familyOf, type Protocol } from './layout.js';
import { DEFAULT_TABLE_SIZE } from './maglev.js';

export interface VipRef {
  address: string;
  port: number;
  protocol: Protocol;
}

export interface BackendRef {
  address: string;
  port?: number;
}

function split(text: string): { host: string; port?: string } {
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracket) return { host: bracket[1], port: bracket[2] };
  const parts = text.split(':');
  if (parts.length === 2) return { host: parts[0], port: parts[1] };
  return { host: text }; // an IPv6 address without a port, or one word
}

function wrap<T>(fn: () => T, what: string, text: string, expected: string): T {
  try {
    return fn();
  } catch {
    throw new UsageError(`invalid ${what} '${text}': expected ${expected}`);
  }
}

const VIP_FORM = 'PROTOCOL:ADDRESS:PORT like tcp:10.0.0.10:8000 or udp:[fd00::10]:53';
const BACKEND_FORM = 'ADDRESS[:PORT] like 10.0.0.2:8000 or [fd00::2]:8000';

/** `tcp:10.0.0.10:8000`, `udp:[fd00::10]:53`: the protocol is part of a
 *  VIP's name, so it is never guessed. */
export function parseVipRef(text: string): VipRef {
  return wrap(() => {
    const m = /^(tcp|udp):(.*)$/.exec(text);
    if (!m) throw new Error();
    const { host, port: p } = split(m[2]);
    if (p === undefined) throw new Error();
    return { address: address(host, 'vip'), port: port(Number(p), 'vip'), protocol: protocol(m[1], 'vip') };
  }, 'VIP', text, VIP_FORM);
}

/** Backends, comma separated, each with a port or all without one (they
 *  then take the VIP's): `10.0.0.2,10.0.0.3:8000` could mean either, so it
 *  is refused rather than read one way. */
export function parseBackendRefs(text: string): BackendRef[] {
  const refs = text.split(',').map((one) =>
    wrap(() => {
      const { host, port: p } = split(one);
      return { address: address(host, 'backend'), ...(p === undefined ? {} : { port: port(Number(p), 'backend') }) };
    }, 'backend', one, BACKEND_FORM),
  );
  const withPort = refs.filter((r) => r.port !== undefined).length;
  if (withPort && withPort !== refs.length) {
    throw new UsageError(`invalid --backend '${text}': give every backend a port or none (those without take the VIP's port)`);
  }
  return refs;
}

/** The message with the command-line flag for each key path of the config
 *  that has one, wherever the key is: at the start (the key that is wrong)
 *  or further on ("an IPv6 VIP needs nat.source_ipv6"). */
function flagFor(message: string): string {
  return message.replace(/\bnat\.source_ipv[46]\b/g, '--nat-source')
    .replace(/^(VIP \S+)\.table_size/, '$1 --table-size').replace(/^(VIP \S+)\.backends\[\d+\]\.weight/, '$1 --weight');
}

export function parseWeight(text: string): number {
  return wrap(() => checkWeight(/^\d+$/.test(text) ? Number(text) : NaN, 'weight'), 'weight', text, 'a whole number from 0 to 65535');
}

export type Edit =
  | { kind: 'vip-add'; vip: VipRef; backends: BackendRef[]; weight: number; tableSize?: number; natSource?: string }
  | { kind: 'vip-del'; vip: VipRef }
  | { kind: 'backend-add'; vip: VipRef; backends: BackendRef[]; weight: number }
  | { kind: 'backend-del'; vip: VipRef; backends: BackendRef[] }
  | { kind: 'weight'; vip: VipRef; backends: BackendRef[]; weight: number };

const sameVip = (a: VipRef) => (b: VipRef) => vipName(a) === vipName(b);

/** The config after the edit, validated whole; errors name the VIP or backend. */
export function editConfig(current: LbConfig, edit: Edit): LbConfig {
  const next: LbConfig = structuredClone(current);
  const name = vipName(edit.vip);
  const index = next.vips.findIndex(sameVip(edit.vip));
  if (edit.kind === 'vip-add') {
    if (index >= 0) throw new UsageError(`VIP ${name} already exists: use --backend-add to add backends`);
    if (edit.natSource) {
      if (familyOf(edit.natSource) === 4) next.nat.source_ipv4 = edit.natSource;
      else next.nat.source_ipv6 = edit.natSource;
    }
    next.vips.push({
      ...edit.vip,
      table_size: edit.tableSize ?? DEFAULT_TABLE_SIZE,
      backends: edit.backends.map((b) => ({ address: b.address, port: b.port ?? edit.vip.port, weight: edit.weight })),
    });
  } else {
    if (index < 0) throw new UsageError(`no VIP ${name}: expected one of ${current.vips.map(vipName).join(', ') || '(none configured)'}`);
    const vip = next.vips[index];
    const find = (b: BackendRef) => vip.backends.findIndex((x) => x.address === b.address && x.port === (b.port ?? vip.port));
    const label = (b: BackendRef) => `${b.address} port ${b.port ?? vip.port}`;
    if (edit.kind === 'vip-del') next.vips.splice(index, 1);
    for (const b of 'backends' in edit ? edit.backends : []) {
      const at = find(b);
      if (edit.kind === 'backend-add') {
        if (at >= 0) throw new UsageError(`backend ${label(b)} is already in VIP ${name}: use --weight to change it`);
        vip.backends.push({ address: b.address, port: b.port ?? vip.port, weight: edit.weight });
        continue;
      }
      if (at < 0) throw new UsageError(`no backend ${label(b)} in VIP ${name}`);
      if (edit.kind === 'backend-del') vip.backends.splice(at, 1);
      else if (edit.kind === 'weight') vip.backends[at].weight = edit.weight;
    }
    if (edit.kind === 'backend-del' && vip.backends.length === 0) {
      throw new UsageError(`removing the last backend would leave VIP ${name} without backends: use --vip-del, or --weight 0 to drain it`);
    }
  }
  try {
    return validateConfig(next);
  } catch (err) {
    // The VIP's own address is the one on the command line: `VIP x:` says it.
    throw new UsageError(flagFor((err as Error).message.replace(/^vips\[\d+\](\.address(?=:))?/, `VIP ${name}`)));
  }
}
