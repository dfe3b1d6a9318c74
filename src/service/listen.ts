// The metrics endpoint's address, `HOST:PORT`, as the config gives it. Kept
// apart from metrics.ts so the config parser does not load the HTTP server.
import { isIPv4, isIPv6 } from 'node:net';
import { XdplbError } from '../errors.js';

export interface Listen {
  /** An IPv4 or IPv6 address literal (IPv6 without brackets). */
  host: string;
  port: number;
}

/** Loopback only unless the operator says otherwise: the counters show
 *  traffic volumes per program, which not every network should see. */
export const DEFAULT_LISTEN = '127.0.0.1:9624';

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** `127.0.0.1:9624` or `[::1]:9624`. Host names are refused: the address
 *  must not depend on a resolver when the service starts at boot. */
export function parseListen(value: unknown, key = 'metrics.listen'): Listen {
  const fail = (): never => {
    throw new XdplbError(`${key}: expected HOST:PORT such as 127.0.0.1:9624 or [::1]:9624, got ${describe(value)}`, 2);
  };
  if (typeof value !== 'string') return fail();
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(value);
  if (!m) return fail();
  const host = m[1] ?? m[2];
  if (m[1] !== undefined ? !isIPv6(host) : !isIPv4(host)) return fail();
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return fail();
  return { host, port };
}

/** The form parseListen reads: brackets around an IPv6 address. */
export function formatListen({ host, port }: Listen): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
