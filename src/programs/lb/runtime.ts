// What `xdp-lb run` knows and the kernel does not: each backend's health and
// each VIP's announcement. The service publishes it in a small JSON file,
// /run/xdplb/netns-<cookie>/lb.json (per network namespace, like the pins;
// $XDPLB_RUN_DIR moves it), replaced whole by a rename on every change, so
// a reader never sees half of one. `xdp-lb --status` and the root service's
// metrics read it. It names the service's pid and that process's start time:
// a file whose writer is gone (killed, or a pid reused by another process)
// is shown as stale, never as the present. The kernel stays the source of
// truth for everything it holds (weights included).
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsCookie } from '../../sys/netns.js';
import type { BgpSession } from './bird.js';
import type { Health } from './health.js';

export interface BackendRuntime {
  health: Health;
  /** ISO time of the last transition (while unchecked, when checking began); null: not checked. */
  since: string | null;
  last_error: string | null;
}

export interface VipRuntime {
  /** Backends taking new flows: weight above 0 and not down. */
  healthy: number;
  /** By backend name (`10.0.0.3:8000`, `[fd00::3]:8000`). */
  backends: Record<string, BackendRuntime>;
  /** Its address is in what BIRD last accepted, and BIRD answers; null: no `bgp`. */
  announced: boolean | null;
  /** Why it is (or is not) announced, in words. */
  announcement: string;
}

export interface BgpRuntime {
  socket: string;
  include_file: string;
  protocol: string;
  reachable: boolean;
  /** Why BIRD could not be asked or refused; null when all went well. */
  error: string | null;
  version: string | null;
  /** Prefixes the service wants announced, and those BIRD last accepted (null: unknown). */
  wanted: string[];
  accepted: string[] | null;
  sessions: BgpSession[];
  /** When BIRD was last asked (ISO). */
  checked: string | null;
}

export interface LbRuntime {
  pid: number;
  /** The pid's start time in clock ticks since boot (/proc/<pid>/stat). */
  start_ticks: string | null;
  started: string;
  updated: string;
  /** The balancer in its slot on every planned interface, each with its root array; null before the first check. */
  attached: boolean | null;
  /** By VIP name (`tcp:10.0.0.10:8000`). */
  vips: Record<string, VipRuntime>;
  bgp: BgpRuntime | null;
}

export function runtimeDir(): string {
  return join(process.env.XDPLB_RUN_DIR || '/run/xdplb', `netns-${netnsCookie()}`);
}

export const runtimeFile = () => join(runtimeDir(), 'lb.json');

export function processStartTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name may hold spaces and parentheses; the fields after it do not.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Replace the file with `state` in one rename. */
export function writeRuntime(state: LbRuntime): void {
  const dir = runtimeDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'lb.json');
  const tmp = join(dir, `.lb.json.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(state, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function removeRuntime(): void {
  rmSync(runtimeFile(), { force: true });
}

/** The published state; `running`: its writer is alive. null when there
 *  is none (no service ran here since boot, or it stopped cleanly) or it
 *  cannot be read as one. */
export function readRuntime(): (LbRuntime & { running: boolean }) | null {
  let state: LbRuntime;
  try {
    state = JSON.parse(readFileSync(runtimeFile(), 'utf8')) as LbRuntime;
  } catch {
    return null;
  }
  if (typeof state !== 'object' || state === null || typeof state.pid !== 'number' || typeof state.vips !== 'object') return null;
  const running = state.start_ticks !== null && processStartTicks(state.pid) === state.start_ticks;
  return { ...state, running };
}
