// The declarative config of the load balancer: parsed, checked as a whole
// and normalized (defaults filled, addresses in canonical form) before
// anything touches the kernel. Every error names the key path and what was
// expected, e.g. `vips[0].backends[1].port: expected a whole number from 1
// to 65535, got 0`.
import { isIP } from 'node:net';
import { UsageError } from '../../errors.js';
import { JsonDoc } from '../../json.js';
import { DEFAULT_TABLE_SIZE, isPrime } from './maglev.js';
import {
  CHAIN_WINDOW_DEFAULT, FORWARDING, GUE_PORT_DEFAULT, LB_MAX_BACKENDS, LB_MAX_VIPS, PROTO, addrBytes, addrText, familyOf,
  type Forwarding, type NatConfig, type Protocol, type Timeouts, type VipForwarding,
} from './layout.js';

export interface BackendConfig {
  address: string;
  port: number;
  weight: number;
  /** Next hop MAC; without it the kernel's FIB and neighbour tables decide. */
  mac?: string;
  /** How the backend is checked; absent: it is not (control plane only, never
   *  an input of the Maglev table). */
  health?: HealthSpec;
}

/** An HTTP status, a list of them, or a class such as "2xx". */
export type ExpectStatus = number | number[] | string;

export interface HealthSpec {
  type: 'tcp' | 'http';
  port: number;
  interval_ms: number;
  timeout_ms: number;
  rise: number;
  fall: number;
  /** HTTP only. */
  path?: string;
  expect_status?: ExpectStatus;
}

/** A NAT VIP has none of VipForwarding's keys; another has `forwarding`,
 *  ipip and gue the encapsulation sources they were given (or took from
 *  the top level), gue its port. */
export interface VipConfig extends VipForwarding {
  address: string;
  port: number;
  protocol: Protocol;
  table_size: number;
  backends: BackendConfig[];
}

export interface LbConfig {
  nat: NatConfig;
  timeouts: Timeouts;
  vips: VipConfig[];
}

/** NAT source ports stay below Linux's ephemeral range (32768-60999), so
 *  the balancer host's own connections do not compete for them. */
export const DEFAULT_NAT = { port_min: 1024, port_max: 32767 } as const;
export const DEFAULT_TIMEOUTS: Timeouts = { tcp_idle_s: 300, udp_idle_s: 60, time_wait_s: 60 };
export const MAX_TABLE_SIZE = 1048573;
export const MAX_WEIGHT = 65535;
/** The port defaults to the backend's own. */
export const DEFAULT_HEALTH = { type: 'tcp', interval_ms: 2000, timeout_ms: 1000, rise: 2, fall: 3 } as const;
export const DEFAULT_HTTP_HEALTH = { path: '/', expect_status: 200 } as const;

export class ConfigError extends UsageError {}

const fail = (path: string, what: string): never => {
  throw new ConfigError(`${path || 'config'}: ${what}`);
};
const shown = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v));

function object(v: unknown, path: string, keys: string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `expected an object, got ${shown(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) fail(`${path ? `${path}.` : ''}${k}`, `unknown key: expected one of ${keys.join(', ')}`);
  }
  return o;
}

function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(path, `expected a whole number from ${min} to ${max}, got ${shown(v)}`);
  }
  return v as number;
}

export function port(v: unknown, path: string): number {
  return integer(v, path, 1, 65535);
}

/** A canonical address of the given family (any, when omitted). */
export function address(v: unknown, path: string, family?: 4 | 6): string {
  const kind = family === 4 ? 'an IPv4 address' : family === 6 ? 'an IPv6 address' : 'an IPv4 or IPv6 address';
  const is = typeof v === 'string' ? isIP(v) : 0;
  if (!is || (family && is !== family)) fail(path, `expected ${kind}, got ${shown(v)}`);
  // isIP() accepts IPv4 only in its canonical dotted form; IPv6 has many.
  return is === 4 ? (v as string) : addrText(addrBytes(v as string), 6);
}

export function protocol(v: unknown, path: string): Protocol {
  if (typeof v !== 'string' || !(v in PROTO)) fail(path, `expected "tcp" or "udp", got ${shown(v)}`);
  return v as Protocol;
}

export function weight(v: unknown, path: string): number {
  return integer(v, path, 0, MAX_WEIGHT);
}

function mac(v: unknown, path: string): string {
  if (typeof v !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(v)) fail(path, `expected a MAC address like 02:00:00:00:00:01, got ${shown(v)}`);
  return (v as string).toLowerCase();
}

const HEALTH_KEYS = ['type', 'port', 'path', 'expect_status', 'interval_ms', 'timeout_ms', 'rise', 'fall'];
type HealthKeys = Partial<HealthSpec>;

function expectStatus(v: unknown, path: string): ExpectStatus {
  const code = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 100 && x <= 599;
  if (code(v) || (typeof v === 'string' && /^[1-5]xx$/.test(v))) return v as ExpectStatus;
  if (Array.isArray(v) && v.length > 0 && v.every(code)) return [...v] as number[];
  return fail(path, `expected an HTTP status from 100 to 599, a list of them or a class like "2xx", got ${shown(v)}`);
}

/**
 * A `health` object (or false) at `path` over the keys it inherits (the
 * VIP's, for a backend): its keys replace those inherited; absent, the
 * inherited ones stand; false turns checks off. Each level is checked as it
 * is merged, so an error names the key of the level that broke a rule.
 */
function healthKeys(v: unknown, path: string, under: HealthKeys | false | undefined): HealthKeys | false | undefined {
  if (v === undefined) return under;
  if (v === false) return false;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `expected an object or false, got ${shown(v)}`);
  const o = object(v, path, HEALTH_KEYS);
  const own: HealthKeys = {};
  if (o.type !== undefined) {
    if (o.type !== 'tcp' && o.type !== 'http') fail(`${path}.type`, `expected "tcp" or "http", got ${shown(o.type)}`);
    own.type = o.type as HealthSpec['type'];
  }
  if (o.port !== undefined) own.port = port(o.port, `${path}.port`);
  if (o.path !== undefined) {
    // It goes into the request line as it is.
    if (typeof o.path !== 'string' || !/^\/[\x21-\x7e]{0,1023}$/.test(o.path)) {
      fail(`${path}.path`, `expected a path starting with "/" in printable ASCII without spaces, got ${shown(o.path)}`);
    }
    own.path = o.path as string;
  }
  if (o.expect_status !== undefined) own.expect_status = expectStatus(o.expect_status, `${path}.expect_status`);
  if (o.interval_ms !== undefined) own.interval_ms = integer(o.interval_ms, `${path}.interval_ms`, 100, 3_600_000);
  if (o.timeout_ms !== undefined) own.timeout_ms = integer(o.timeout_ms, `${path}.timeout_ms`, 10, 3_600_000);
  if (o.rise !== undefined) own.rise = integer(o.rise, `${path}.rise`, 1, 100);
  if (o.fall !== undefined) own.fall = integer(o.fall, `${path}.fall`, 1, 100);
  const keys: HealthKeys = { ...(under || {}) };
  // A level that turns a check into TCP does not inherit the HTTP keys.
  if (own.type === 'tcp') {
    delete keys.path;
    delete keys.expect_status;
  }
  Object.assign(keys, own);
  if ((keys.type ?? DEFAULT_HEALTH.type) === 'tcp') {
    for (const k of ['path', 'expect_status'] as const) {
      if (own[k] !== undefined) fail(`${path}.${k}`, `only for "type": "http" checks`);
    }
  }
  const interval = keys.interval_ms ?? DEFAULT_HEALTH.interval_ms;
  const timeout = keys.timeout_ms ?? DEFAULT_HEALTH.timeout_ms;
  if (timeout >= interval) {
    // Blame the key this level set (a level above was checked already).
    if (own.timeout_ms !== undefined) fail(`${path}.timeout_ms`, `expected less than interval_ms (${interval}), got ${timeout}`);
    fail(`${path}.interval_ms`, `expected more than timeout_ms (${timeout}), got ${interval}`);
  }
  return keys;
}

/** Inherited and own keys over the defaults, for a backend on `backendPort`. */
function healthSpec(keys: HealthKeys, backendPort: number): HealthSpec {
  // Field by field, each shape in one literal: spreading the defaults and
  // the keys over each other, or adding keys afterwards, made validating
  // 10,000 checked backends up to 70 times slower.
  const type = keys.type ?? DEFAULT_HEALTH.type;
  const port = keys.port ?? backendPort;
  const interval_ms = keys.interval_ms ?? DEFAULT_HEALTH.interval_ms;
  const timeout_ms = keys.timeout_ms ?? DEFAULT_HEALTH.timeout_ms;
  const rise = keys.rise ?? DEFAULT_HEALTH.rise;
  const fall = keys.fall ?? DEFAULT_HEALTH.fall;
  if (type === 'tcp') return { type, port, interval_ms, timeout_ms, rise, fall };
  const path = keys.path ?? DEFAULT_HTTP_HEALTH.path;
  const expect_status = keys.expect_status ?? DEFAULT_HTTP_HEALTH.expect_status;
  return { type, port, interval_ms, timeout_ms, rise, fall, path, expect_status };
}

export const vipName = (v: { address: string; port: number; protocol: string }) =>
  `${v.protocol}:${v.address.includes(':') ? `[${v.address}]` : v.address}:${v.port}`;

/** `family` undefined: either (an encapsulating VIP's backends). */
export function backend(v: unknown, path: string, vip: { port: number; family?: 4 | 6; health?: HealthKeys | false }): BackendConfig {
  const o = object(v, path, ['address', 'port', 'weight', 'mac', 'health']);
  const addr = address(o.address, `${path}.address`, vip.family);
  const p = o.port === undefined ? vip.port : port(o.port, `${path}.port`);
  const w = o.weight === undefined ? 1 : weight(o.weight, `${path}.weight`);
  const health = o.health === undefined ? vip.health : healthKeys(o.health, `${path}.health`, vip.health);
  const b: BackendConfig = health ? { address: addr, port: p, weight: w, health: healthSpec(health, p) } : { address: addr, port: p, weight: w };
  if (o.mac !== undefined) b.mac = mac(o.mac, `${path}.mac`);
  return b;
}

// ---- forwarding: nat, dsr-l2, ipip, gue ----

export const FORWARDING_KEYS = ['forwarding', 'encap_source_ipv4', 'encap_source_ipv6', 'gue_port', 'stateless', 'chain_window_s'] as const;

/** The top level's forwarding keys: every VIP's defaults (`stateless` and
 *  `chain_window_s`: every gue VIP's). */
export interface ForwardingDefaults {
  forwarding: Forwarding;
  encap_source_ipv4?: string;
  encap_source_ipv6?: string;
  gue_port: number;
  stateless: boolean;
  chain_window_s: number;
}
export const DEFAULT_FORWARDING: ForwardingDefaults = {
  forwarding: 'nat', gue_port: GUE_PORT_DEFAULT, stateless: false, chain_window_s: CHAIN_WINDOW_DEFAULT,
};
/** A day: longer, an entry would name a backend long gone. */
export const MAX_CHAIN_WINDOW_S = 86400;

function forwardingMode(v: unknown, path: string): Forwarding {
  if (typeof v !== 'string' || !(v in FORWARDING)) {
    fail(path, `expected one of ${Object.keys(FORWARDING).map((k) => `"${k}"`).join(', ')}, got ${shown(v)}`);
  }
  return v as Forwarding;
}

/** An outer source address, or a prefix whose host bits (the last 32 at
 *  most) vary with the flow; host bits zero, the address not unspecified. */
function encapSource(v: unknown, path: string, family: 4 | 6): string {
  const kind = family === 4 ? 'IPv4' : 'IPv6';
  const expected = family === 4
    ? 'an IPv4 address or prefix (10.9.0.1, 10.9.0.0/24)'
    : 'an IPv6 address or a prefix of /96 or longer (fd09::1, fd09::/112)';
  const m = typeof v === 'string' ? /^([^/]+)(?:\/(\d{1,3}))?$/.exec(v) : null;
  const len = m?.[2] === undefined ? (family === 4 ? 32 : 128) : Number(m[2]);
  if (!m || isIP(m[1]) !== family || len > (family === 4 ? 32 : 128) || len < (family === 4 ? 0 : 96)) {
    fail(path, `expected ${expected}, got ${shown(v)}`);
  }
  const bytes = addrBytes(m![1]);
  const host = (family === 4 ? 32 : 128) - len;
  const last = bytes.readUInt32BE(family === 4 ? 0 : 12);
  const mask = host >= 32 ? 0xffffffff : ((1 << host) >>> 0) - 1;
  if (((last & mask) >>> 0) !== 0) fail(path, `expected the ${kind} prefix's host bits to be zero, got ${shown(v)}`);
  if (bytes.every((b) => b === 0)) fail(path, `expected an ${kind} source that is not unspecified, got ${shown(v)}`);
  const text = address(m![1], path, family);
  return m![2] === undefined ? text : `${text}/${len}`;
}

/** The top level's defaults for every VIP's forwarding. */
function forwardingDefaults(o: Record<string, unknown>): ForwardingDefaults {
  const d: ForwardingDefaults = {
    forwarding: o.forwarding === undefined ? 'nat' : forwardingMode(o.forwarding, 'forwarding'),
    gue_port: o.gue_port === undefined ? GUE_PORT_DEFAULT : port(o.gue_port, 'gue_port'),
    stateless: o.stateless === undefined ? false : bool(o.stateless, 'stateless'),
    chain_window_s: o.chain_window_s === undefined ? CHAIN_WINDOW_DEFAULT : chainWindow(o.chain_window_s, 'chain_window_s'),
  };
  if (o.encap_source_ipv4 !== undefined) d.encap_source_ipv4 = encapSource(o.encap_source_ipv4, 'encap_source_ipv4', 4);
  if (o.encap_source_ipv6 !== undefined) d.encap_source_ipv6 = encapSource(o.encap_source_ipv6, 'encap_source_ipv6', 6);
  return d;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, `expected true or false, got ${shown(v)}`);
  return v as boolean;
}

function chainWindow(v: unknown, path: string): number {
  return integer(v, path, 1, MAX_CHAIN_WINDOW_S);
}

/** A VIP's forwarding: its own keys over the defaults. A VIP's own
 *  `stateless: true` needs gue; the top level's applies to gue VIPs. */
function vipForwarding(o: Record<string, unknown>, path: string, d: ForwardingDefaults): VipForwarding {
  const mode = o.forwarding === undefined ? d.forwarding : forwardingMode(o.forwarding, `${path}.forwarding`);
  const stateless = o.stateless === undefined ? d.stateless && mode === 'gue' : bool(o.stateless, `${path}.stateless`);
  if (stateless && mode !== 'gue') {
    fail(`${path}.stateless`, `a stateless VIP needs "forwarding": "gue" (its backends' decapsulator chains its flows), got forwarding "${mode}"`);
  }
  if (o.chain_window_s !== undefined && !stateless) {
    fail(`${path}.chain_window_s`, `only for a stateless VIP ("stateless": true), got ${shown(o.chain_window_s)}`);
  }
  if (mode === 'nat') return {};
  if (mode === 'dsr-l2') return { forwarding: mode };
  const f: VipForwarding = { forwarding: mode };
  const v4 = o.encap_source_ipv4 === undefined ? d.encap_source_ipv4 : encapSource(o.encap_source_ipv4, `${path}.encap_source_ipv4`, 4);
  const v6 = o.encap_source_ipv6 === undefined ? d.encap_source_ipv6 : encapSource(o.encap_source_ipv6, `${path}.encap_source_ipv6`, 6);
  if (v4) f.encap_source_ipv4 = v4;
  if (v6) f.encap_source_ipv6 = v6;
  if (mode === 'gue') f.gue_port = o.gue_port === undefined ? d.gue_port : port(o.gue_port, `${path}.gue_port`);
  if (stateless) {
    f.stateless = true;
    f.chain_window_s = o.chain_window_s === undefined ? d.chain_window_s : chainWindow(o.chain_window_s, `${path}.chain_window_s`);
  }
  return f;
}

/** Each backend reachable the VIP's way: NAT and dsr-l2 keep the packet's
 *  family; ipip and gue take an IPv4 VIP to IPv6 backends too (IPv4 in
 *  IPv6), never the other way; an encapsulation needs a source of the
 *  backend's family. Without NAT the port is the VIP's: nothing rewrites it. */
function checkReach(v: VipConfig, path: string, family: 4 | 6): void {
  const mode = v.forwarding ?? 'nat';
  if (mode === 'nat') return; // its backends were parsed for the VIP's family
  const encap = mode === 'ipip' || mode === 'gue';
  // No string built per backend unless one fails: a VIP may have thousands.
  v.backends.forEach((b, i) => {
    const bf = familyOf(b.address);
    const at = () => `${path}.backends[${i}].address`;
    if (b.port !== v.port) {
      fail(`${path}.backends[${i}].port`, `forwarding "${mode}" hands the backend the client's packet unchanged, to the VIP's port: expected ${v.port} (or no port), got ${b.port}`);
    }
    if (mode === 'dsr-l2' && bf !== family) {
      fail(at(), `forwarding "dsr-l2" leaves the packet as it is: it cannot reach an IPv${bf} backend from an IPv${family} VIP, got ${shown(b.address)}`);
    }
    if (encap && family === 6 && bf === 4) {
      fail(at(), `forwarding "${mode}" cannot reach an IPv4 backend from an IPv6 VIP (IPv6 in IPv4 is not sent), got ${shown(b.address)}`);
    }
    const source = bf === 4 ? 'encap_source_ipv4' : 'encap_source_ipv6';
    if (encap && !v[source]) {
      fail(`${path}.${source}`, `forwarding "${mode}" to the IPv${bf} backend ${b.address} needs an IPv${bf} encapsulation source (here or at the top level), got none`);
    }
  });
}

export function vip(v: unknown, path: string, defaults: ForwardingDefaults = DEFAULT_FORWARDING): VipConfig {
  const o = object(v, path, ['address', 'port', 'protocol', 'table_size', 'backends', 'health', ...FORWARDING_KEYS]);
  const addr = address(o.address, `${path}.address`);
  const family = familyOf(addr);
  const fwd = vipForwarding(o, path, defaults);
  const p = port(o.port, `${path}.port`);
  const health = healthKeys(o.health, `${path}.health`, undefined);
  const size = o.table_size === undefined ? DEFAULT_TABLE_SIZE : integer(o.table_size, `${path}.table_size`, 7, MAX_TABLE_SIZE);
  if (!isPrime(size)) fail(`${path}.table_size`, `expected a prime number (such as 65537), got ${size}`);
  if (!Array.isArray(o.backends) || o.backends.length === 0) {
    fail(`${path}.backends`, `expected a non-empty list of backends, got ${shown(o.backends)}`);
  }
  // NAT's backends are checked for the VIP's family as they are parsed
  // (the message says what is expected); the others' by checkReach().
  const backends = (o.backends as unknown[]).map((b, i) =>
    backend(b, `${path}.backends[${i}]`, { port: p, family: fwd.forwarding ? undefined : family, health }));
  // Keyed by address alone (the same address on other ports is rare): a
  // key built per backend costs more than the rest of the check.
  const first = new Map<string, number>();
  backends.forEach((b, i) => {
    const at = first.get(b.address);
    if (at === undefined) return first.set(b.address, i);
    const dup = backends.findIndex((x, j) => j >= at && j < i && x.address === b.address && x.port === b.port);
    if (dup >= 0) fail(`${path}.backends[${i}]`, `duplicate backend ${b.address} port ${b.port} (also backends[${dup}])`);
  });
  const out: VipConfig = { address: addr, port: p, protocol: protocol(o.protocol ?? 'tcp', `${path}.protocol`), table_size: size, backends, ...fwd };
  checkReach(out, path, family);
  return out;
}

/** Check and normalize a whole config. */
export function validateConfig(v: unknown): LbConfig {
  const o = object(v, '', ['nat', 'timeouts', 'vips', ...FORWARDING_KEYS]);
  const defaults = forwardingDefaults(o);
  const n = object(o.nat ?? {}, 'nat', ['source_ipv4', 'source_ipv6', 'port_min', 'port_max']);
  const nat: NatConfig = {
    port_min: n.port_min === undefined ? DEFAULT_NAT.port_min : integer(n.port_min, 'nat.port_min', 1, 65535),
    port_max: n.port_max === undefined ? DEFAULT_NAT.port_max : integer(n.port_max, 'nat.port_max', 1, 65535),
  };
  if (nat.port_max < nat.port_min) fail('nat.port_max', `expected at least nat.port_min (${nat.port_min}), got ${nat.port_max}`);
  if (n.source_ipv4 !== undefined) nat.source_ipv4 = address(n.source_ipv4, 'nat.source_ipv4', 4);
  if (n.source_ipv6 !== undefined) nat.source_ipv6 = address(n.source_ipv6, 'nat.source_ipv6', 6);
  const t = object(o.timeouts ?? {}, 'timeouts', Object.keys(DEFAULT_TIMEOUTS));
  const timeouts = Object.fromEntries(
    Object.entries(DEFAULT_TIMEOUTS).map(([k, d]) => [k, t[k] === undefined ? d : integer(t[k], `timeouts.${k}`, 0, 86400)]),
  ) as unknown as Timeouts;
  if (o.vips !== undefined && !Array.isArray(o.vips)) fail('vips', `expected a list of VIPs, got ${shown(o.vips)}`);
  const vips = ((o.vips as unknown[] | undefined) ?? []).map((x, i) => vip(x, `vips[${i}]`, defaults));
  if (vips.length > LB_MAX_VIPS) fail('vips', `expected at most ${LB_MAX_VIPS} VIPs, got ${vips.length}`);
  const total = vips.reduce((a, x) => a + x.backends.length, 0);
  if (total > LB_MAX_BACKENDS) fail('vips', `expected at most ${LB_MAX_BACKENDS} backends in all, got ${total}`);
  const seen = new Map<string, number>();
  vips.forEach((x, i) => {
    const key = vipName(x);
    if (seen.has(key)) fail(`vips[${i}]`, `duplicate VIP ${key} (also vips[${seen.get(key)}])`);
    seen.set(key, i);
    const fam = familyOf(x.address);
    if (x.forwarding) return; // no NAT: the backends answer the clients themselves
    if (fam === 4 && !nat.source_ipv4) fail(`vips[${i}].address`, `an IPv4 VIP needs nat.source_ipv4`);
    if (fam === 6 && !nat.source_ipv6) fail(`vips[${i}].address`, `an IPv6 VIP needs nat.source_ipv6`);
  });
  return { nat, timeouts, vips };
}

/** A config file's text: JSON (no comments, no key twice), checked whole
 *  (and by `check`, whose ConfigErrors name a key path too); an error names
 *  the file, line and column and the key path. */
export function parseConfig(text: string, file: string, check?: (c: LbConfig) => void): LbConfig {
  const doc = JsonDoc.parse(text, file, (m) => new ConfigError(m));
  try {
    const config = validateConfig(doc.value);
    check?.(config);
    return config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const colon = err.message.indexOf(': ');
    const path = err.message.slice(0, colon);
    throw new ConfigError(`${doc.where(path === 'config' ? '' : path)}: ${err.message}`);
  }
}
