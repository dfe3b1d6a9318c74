// Backend health checks: each checked backend (a VIP's backend whose config
// has `health`) is probed at its own address every interval, by a TCP
// connect or an HTTP GET; `rise` successes in a row make it up, `fall`
// failures in a row make it down. A down backend goes to the kernel with
// weight 0 (drained: no new flows, its established flows stay), through the
// same apply as any config change; health never changes a Maglev input.
//
// A target starts `unchecked`, which takes new flows as `up` does: a backend
// is in rotation until proven down, so starting the service or adding a
// backend never empties a VIP while the first checks run. A backend whose
// config has no `health` is never checked and always `unchecked`.
import http from 'node:http';
import net from 'node:net';
import { vipName, type ExpectStatus, type HealthSpec, type LbConfig } from './config.js';
import { fnv1a32 } from './maglev.js';

export type Health = 'up' | 'down' | 'unchecked';

export interface HealthTarget {
  /** The VIP and the backend, `tcp:10.0.0.10:8000 10.0.0.3:8000`. */
  key: string;
  /** The backend as logs name it, `10.0.0.3:8000` or `[fd00::3]:8000`. */
  backend: string;
  /** Where the check connects (the health port is in the spec). */
  address: string;
  spec: HealthSpec;
}

export interface HealthState {
  health: Health;
  /** The last transition; while `unchecked`, when checking began. */
  since: Date;
  /** The last failure's reason, kept after a recovery; null before any. */
  last_error: string | null;
  /** Results in a row: one of the two is 0. */
  successes: number;
  failures: number;
}

/** Where a new target starts. */
export type InitialHealth = Pick<HealthState, 'health' | 'since' | 'last_error'>;

export interface HealthEvent {
  key: string;
  backend: string;
  from: Health;
  to: 'up' | 'down';
  state: HealthState;
  /** `10.0.0.3:8000 down: connect ECONNREFUSED (3 of 3)`, `10.0.0.3:8000 up (2 of 2)`. */
  line: string;
}

export type CheckResult = { ok: true } | { ok: false; error: string };

export interface HealthCheckerOptions {
  /** Checks in flight at most; the others wait their turn. */
  concurrency?: number;
  /** Every result, as it comes. */
  onCheck?: (key: string, result: CheckResult) => void;
}

export const DEFAULT_CONCURRENCY = 64;
/** Enough of a body to let the server finish and close first; the status
 *  line alone decides. */
const BODY_LIMIT = 64 * 1024;
const OK: CheckResult = { ok: true };

export const backendName = (b: { address: string; port: number }) =>
  `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}`;

export const targetKey = (vip: { address: string; port: number; protocol: string }, b: { address: string; port: number }) =>
  `${vipName(vip)} ${backendName(b)}`;

/** Every checked backend of the config. */
export function healthTargets(config: LbConfig): HealthTarget[] {
  return config.vips.flatMap((v) =>
    v.backends.flatMap((b) => (b.health ? [{ key: targetKey(v, b), backend: backendName(b), address: b.address, spec: b.health }] : [])),
  );
}

/** When a target's first check runs after it is added: a fixed point of
 *  its interval, from its key, so that targets (and restarts) spread out. */
export const firstCheckDelay = (key: string, intervalMs: number) => fnv1a32(key) % intervalMs;

export function statusMatches(status: number, expect: ExpectStatus): boolean {
  if (typeof expect === 'number') return status === expect;
  if (typeof expect === 'string') return Math.floor(status / 100) === Number(expect[0]);
  return expect.includes(status);
}

/** One check of `address`, never rejected: a failure is a result with its
 *  reason. Aborting ends it at once, with a result nobody should judge. */
export function checkBackend(address: string, spec: HealthSpec, signal?: AbortSignal): Promise<CheckResult> {
  return new Promise((resolve) => {
    let close = () => {};
    /** What an HTTP check learnt from the status line while it reads on. */
    let decided: CheckResult | undefined;
    const finish = (result: CheckResult) => {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
      close();
      close = () => {};
      resolve(result);
    };
    const onAbort = () => finish({ ok: false, error: 'aborted' });
    const deadline = setTimeout(() => finish(decided ?? { ok: false, error: `timeout after ${spec.timeout_ms} ms` }), spec.timeout_ms);
    deadline.unref();
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);

    if (spec.type === 'tcp') {
      const socket = net.connect({ host: address, port: spec.port });
      let connected = false;
      // A reset rather than a FIN: the check leaves no TIME_WAIT behind on
      // the balancer, however many backends it checks.
      close = () => (connected ? socket.resetAndDestroy() : socket.destroy());
      socket.once('connect', () => {
        connected = true;
        finish(OK);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: `connect ${err.code ?? err.message}` }));
      return;
    }

    let connected = false;
    const req = http.request({
      host: address,
      port: spec.port,
      path: spec.path,
      method: 'GET',
      agent: false,
      headers: { Host: backendName({ address, port: spec.port }), Connection: 'close', 'User-Agent': 'xdplb-health' },
    });
    close = () => req.destroy();
    req.once('socket', (s) => s.once('connect', () => (connected = true)));
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      decided = statusMatches(status, spec.expect_status ?? 200) ? OK : { ok: false, error: `HTTP ${status}` };
      const result = decided;
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > BODY_LIMIT) finish(result);
      });
      res.once('end', () => finish(result));
      res.on('error', () => finish(result));
    });
    // Listening for good: destroying the request may report one more error.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (decided) return finish(decided);
      if (!connected) return finish({ ok: false, error: `connect ${err.code ?? err.message}` });
      if (err.code?.startsWith('HPE_')) return finish({ ok: false, error: `bad HTTP response (${err.code})` });
      finish({ ok: false, error: err.message === 'socket hang up' ? 'closed before a response' : `${err.syscall ?? 'read'} ${err.code ?? err.message}` });
    });
    req.end();
  });
}

interface Entry {
  target: HealthTarget;
  state: HealthState;
  /** When the next (or current) check was due, on the monotonic clock. */
  due: number;
  timer?: NodeJS.Timeout;
  queued: boolean;
  running?: { abort: AbortController; done: Promise<void> };
}

function sameTarget(a: HealthTarget, b: HealthTarget): boolean {
  if (a.address !== b.address || a.backend !== b.backend) return false;
  const keys = new Set([...Object.keys(a.spec), ...Object.keys(b.spec)]) as Set<keyof HealthSpec>;
  return [...keys].every((k) => JSON.stringify(a.spec[k]) === JSON.stringify(b.spec[k]));
}

const copy = (s: HealthState): HealthState => ({ ...s, since: new Date(s.since) });

/**
 * Checks every target on its own schedule, at most `concurrency` at a time,
 * and calls `onChange` on every transition to up or down. The next check is
 * scheduled before, so an exception from `onChange` (it surfaces as an
 * unhandled rejection) stops no check. Its timers never keep the process
 * alive; stop() ends it.
 */
export class HealthChecker {
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private readonly limit: number;
  private running = 0;
  private stopped = false;

  constructor(
    targets: HealthTarget[],
    private readonly onChange: (event: HealthEvent) => void,
    private readonly options: HealthCheckerOptions = {},
  ) {
    this.limit = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(this.limit) || this.limit < 1) throw new RangeError(`concurrency: expected a whole number above 0, got ${this.limit}`);
    this.update(targets);
  }

  /**
   * Check these targets from now on. A target whose key was there already
   * keeps its state and counts (a reload never flaps a backend), even when
   * its check changed: the next results are judged by the new rise and fall.
   * A target no longer listed stops, its check in flight aborted. A new
   * target starts as `initial` has it (a restarted service carries a
   * drained backend over as down), otherwise unchecked.
   */
  update(targets: HealthTarget[], initial?: ReadonlyMap<string, InitialHealth>): void {
    if (this.stopped) throw new Error('health checker stopped');
    const next = new Map(targets.map((t) => [t.key, t]));
    for (const [key, e] of this.entries) {
      if (next.has(key)) continue;
      this.entries.delete(key);
      this.halt(e);
    }
    const now = performance.now();
    for (const t of next.values()) {
      const e = this.entries.get(t.key);
      if (!e) {
        const seed = initial?.get(t.key);
        const entry: Entry = {
          target: t, due: 0, queued: false,
          state: seed
            ? { health: seed.health, since: new Date(seed.since), last_error: seed.last_error, successes: 0, failures: 0 }
            : { health: 'unchecked', since: new Date(), last_error: null, successes: 0, failures: 0 },
        };
        this.entries.set(t.key, entry);
        this.schedule(entry, now + firstCheckDelay(t.key, t.spec.interval_ms));
        continue;
      }
      if (sameTarget(e.target, t)) continue;
      const retimed = e.target.spec.interval_ms !== t.spec.interval_ms;
      e.target = t;
      // Waiting on the old interval: wait on the new one instead.
      if (retimed && e.timer) {
        clearTimeout(e.timer);
        this.schedule(e, now + firstCheckDelay(t.key, t.spec.interval_ms));
      }
    }
  }

  /** Every target's state, as copies. */
  states(): Map<string, HealthState> {
    return new Map([...this.entries].map(([k, e]) => [k, copy(e.state)]));
  }

  /** Stop every timer and abort the checks in flight; resolves once they
   *  have let go of their sockets. No event follows. */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = [...this.entries.values()].map((e) => this.halt(e));
    this.entries.clear();
    this.queue.length = 0;
    await Promise.all(running);
  }

  private halt(e: Entry): Promise<void> | undefined {
    clearTimeout(e.timer);
    e.timer = undefined;
    if (e.queued) {
      this.queue.splice(this.queue.indexOf(e), 1);
      e.queued = false;
    }
    e.running?.abort.abort();
    return e.running?.done;
  }

  private schedule(e: Entry, at: number): void {
    e.due = at;
    e.timer = setTimeout(() => {
      e.timer = undefined;
      e.queued = true;
      this.queue.push(e);
      this.pump();
    }, Math.max(0, at - performance.now()));
    e.timer.unref();
  }

  private pump(): void {
    while (this.running < this.limit && this.queue.length > 0) {
      const e = this.queue.shift()!;
      e.queued = false;
      this.start(e);
    }
  }

  private start(e: Entry): void {
    const abort = new AbortController();
    const { key, address, spec } = e.target;
    this.running++;
    const done = checkBackend(address, spec, abort.signal).then((result) => {
      this.running--;
      e.running = undefined;
      if (abort.signal.aborted) return this.pump();
      // The next check on the same beat, skipping beats already missed (a
      // check that waited its turn must not run twice in a row).
      const interval = e.target.spec.interval_ms;
      const now = performance.now();
      this.schedule(e, e.due + interval * Math.max(1, Math.ceil((now - e.due) / interval)));
      this.pump();
      this.options.onCheck?.(key, result);
      this.judge(e, result);
    });
    e.running = { abort, done };
  }

  private judge(e: Entry, result: CheckResult): void {
    const s = e.state;
    const { backend, key, spec } = e.target;
    const from = s.health;
    let line: string;
    if (result.ok) {
      s.successes++;
      s.failures = 0;
      if (s.health === 'up' || s.successes < spec.rise) return;
      s.health = 'up';
      line = `${backend} up (${s.successes} of ${spec.rise})`;
    } else {
      s.failures++;
      s.successes = 0;
      s.last_error = result.error;
      if (s.health === 'down' || s.failures < spec.fall) return;
      s.health = 'down';
      line = `${backend} down: ${result.error} (${s.failures} of ${spec.fall})`;
    }
    s.since = new Date();
    this.onChange({ key, backend, from, to: s.health, state: copy(s), line });
  }
}

/**
 * The config the kernel gets: each down backend with weight 0. Everything
 * else is as configured (a backend the operator set to 0 stays 0, table
 * sizes, backends and their order stay), so backend ids and the other
 * backends' table entries do not move.
 */
export function kernelConfig(config: LbConfig, states: ReadonlyMap<string, Pick<HealthState, 'health'>>): LbConfig {
  const down = (v: LbConfig['vips'][number], b: LbConfig['vips'][number]['backends'][number]) =>
    !!b.health && b.weight > 0 && states.get(targetKey(v, b))?.health === 'down';
  return {
    ...config,
    vips: config.vips.map((v) =>
      v.backends.some((b) => down(v, b)) ? { ...v, backends: v.backends.map((b) => (down(v, b) ? { ...b, weight: 0 } : b)) } : v,
    ),
  };
}

export interface BackendHealth {
  health: Health;
  /** null for a backend that is not checked. */
  since: Date | null;
  last_error: string | null;
}

export interface VipHealth {
  /** Backends taking new flows: weight above 0 and not down. */
  healthy: number;
  /** By backendName(). */
  backends: Record<string, BackendHealth>;
}

/** Per VIP (by vipName()) and backend, for `--status --json`. */
export function healthStatus(config: LbConfig, states: ReadonlyMap<string, HealthState>): Record<string, VipHealth> {
  return Object.fromEntries(
    config.vips.map((v) => {
      let healthy = 0;
      const backends = Object.fromEntries(
        v.backends.map((b) => {
          const s = b.health ? states.get(targetKey(v, b)) : undefined;
          const h: BackendHealth = s ? { health: s.health, since: s.since, last_error: s.last_error } : { health: 'unchecked', since: null, last_error: null };
          if (b.weight > 0 && h.health !== 'down') healthy++;
          return [backendName(b), h];
        }),
      );
      return [vipName(v), { healthy, backends }];
    }),
  );
}

/** `3m12s`, `2h5m`, `4d1h`: how long ago, to the unit that matters. */
function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** A backend's health in one line for the status table: `up 3m12s`,
 *  `down 40s: connect ECONNREFUSED`, `unchecked`. */
export function healthText(h: BackendHealth, now: Date = new Date()): string {
  if (h.health === 'unchecked' || !h.since) return 'unchecked';
  const text = `${h.health} ${age(now.getTime() - h.since.getTime())}`;
  return h.health === 'down' && h.last_error ? `${text}: ${h.last_error}` : text;
}
