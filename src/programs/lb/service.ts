// The load balancer as a service (xdp-lb run): in its slot on the root's
// interfaces, with the section's VIPs applied (only the difference written,
// under the state's lock), and checked on every reconciliation: whatever
// an apply would write is something the kernel does not hold. Stopping
// takes it out of the slots; its state stays for the next start.
//
// It also checks the backends' health and drains the failed ones, and, with
// a `bgp` part, has BIRD announce each VIP's address while the data plane is
// whole and the VIP has a backend taking new flows. The kernel is given the
// config as health has it (kernelConfig: a down backend weighs 0), by the
// same plan and apply as any change, and checked against that same config,
// so a health change is never taken for a difference to repair. What the
// kernel does not hold (health, announcements) is published for
// `xdp-lb --status` and the metrics (runtime.ts).
import type { Log, ServiceHandler } from '../contract.js';
import type { Iface } from '../../root/pins.js';
import { findProgram, placeProgram, removeProgram, withRoot } from '../../root/place.js';
import { vipName, type LbConfig } from './config.js';
import { LB_SPEC } from './spec.js';
import { withLbState } from './pins.js';
import { applyConfig, planFor } from './apply.js';
import { readState } from './state.js';
import { lbStatus } from './status.js';
import { chainWarnings, describeChanges } from './changes.js';
import { vipWarnings } from './local.js';
import { checkDsrL2 } from './reach.js';
import { ChainExpiry } from './expiry.js';
import type { BirdConfig } from './bird.js';
import { Announcer } from './announce.js';
import type { LbSection } from './settings.js';
import {
  HealthChecker, backendName, healthStatus, healthTargets, kernelConfig, targetKey,
  type HealthEvent, type HealthState, type InitialHealth,
} from './health.js';
import { processStartTicks, readRuntime, removeRuntime, writeRuntime, type LbRuntime, type VipRuntime } from './runtime.js';

type Vip = LbConfig['vips'][number];

const hostPrefix = (address: string) => `${address}/${address.includes(':') ? 128 : 32}`;
const sameBgp = (a: BirdConfig | undefined, b: BirdConfig | undefined) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Checked backends a restarted service takes over as down: those the
 * kernel holds at weight 0 while the config gives them more, unless the
 * last published state says health did not drain them (then the 0 was an
 * operator's, and the config now says otherwise). So a restart neither
 * puts a dead backend back into rotation for `fall` checks nor drains a
 * live one: the table does not move at start. Their `rise` checks bring
 * them back.
 */
export function carriedOver(held: LbConfig, config: LbConfig, previous: LbRuntime | null): Map<string, InitialHealth> {
  const out = new Map<string, InitialHealth>();
  const heldVips = new Map(held.vips.map((v) => [vipName(v), v]));
  for (const v of config.vips) {
    const h = heldVips.get(vipName(v));
    if (!h) continue;
    const weights = new Map(h.backends.map((b) => [backendName(b), b.weight]));
    for (const b of v.backends) {
      if (!b.health || b.weight === 0 || weights.get(backendName(b)) !== 0) continue;
      const before = previous?.vips[vipName(v)]?.backends[backendName(b)];
      if (before && before.health !== 'down') continue;
      out.set(targetKey(v, b), before?.since
        ? { health: 'down', since: new Date(before.since), last_error: before.last_error }
        : { health: 'down', since: new Date(), last_error: 'drained in the kernel when the service started' });
    }
  }
  return out;
}

class LbService implements ServiceHandler<LbSection> {
  private section: LbSection | null = null;
  private checker: HealthChecker | null = null;
  private log: Log = () => undefined;
  private pending: NodeJS.Immediate | null = null;
  /** null until the service says (settled()): nothing is announced or withdrawn before. */
  private attached: boolean | null = null;
  private announcer: Announcer | null = null;
  private wanted = new Map<string, string>();
  private stopped = false;
  private report: (() => void) | null = null;
  /** What the STATUS= line last said of health and announcements. */
  private summary = '';
  private readonly started = new Date();
  private readonly startTicks = processStartTicks(process.pid);
  private readonly expiry = new ChainExpiry();

  async apply(ifaces: Iface[], slot: number, section: LbSection, log: Log): Promise<string[]> {
    this.log = log;
    const { bgp, ...config } = section;
    checkDsrL2(config);
    const placed = placeProgram(LB_SPEC, ifaces, slot);
    const lines = placed.filter((p) => p.changed).map((p) => `${p.iface.name}: xdp_lb in slot ${p.slot}`);
    const first = !this.checker;
    // The first apply of this process takes over what health had drained.
    const initial = first ? withLbState((maps) => carriedOver(readState(maps).config, config, readRuntime())) : undefined;
    const states = new Map<string, Pick<HealthState, 'health'>>([...(initial ?? []), ...(this.checker?.states() ?? [])]);
    const want = kernelConfig(config, states);
    const { before, result } = withLbState((maps) => {
      const have = readState(maps);
      return { before: have.config, result: applyConfig(maps, want, have) };
    });
    lines.push(...describeChanges(before, want).map((l) => `lb: ${l}`));
    for (const line of vipWarnings(config)) log(`lb: ${line}`, 'warning');
    for (const line of chainWarnings(result)) log(`lb: ${line}`, 'warning');
    this.expiry.run(log);
    for (const v of config.vips) {
      for (const b of v.backends) {
        const seed = initial?.get(targetKey(v, b));
        if (seed) log(`lb: ${backendName(b)} of ${vipName(v)} stays drained as the kernel holds it, down until ${b.health!.rise} checks pass (${seed.last_error})`, 'notice');
      }
    }

    // The new config is in the kernel: from now on it is checked, and announced.
    this.section = section;
    if (first) this.checker = new HealthChecker([], (e) => this.changed(e));
    this.checker!.update(healthTargets(config), initial);
    if (!sameBgp(this.announcer?.config, bgp)) await this.replaceAnnouncer(bgp, lines);
    this.announce();
    this.publish();
    return lines;
  }

  detach(ifaces: Iface[]): void {
    removeProgram(LB_SPEC, ifaces);
  }

  check(ifaces: Iface[], slot: number, section: LbSection): string[] {
    // A health change not applied yet is applied now, not taken for a difference.
    this.flush();
    const wrong = ifaces.flatMap((iface) => withRoot(iface, (root) => {
      const at = findProgram(root, LB_SPEC);
      return at && at.slot === slot ? [] : [`${iface.name}: xdp_lb not in slot ${slot}`];
    }));
    // Under the lock: an apply under way is not taken for a difference.
    const want = this.kernelConfig(section);
    const writes = withLbState((maps) => planFor(maps, readState(maps), want).steps.map((s) => s.what));
    if (writes.length) wrong.push(`lb: the kernel does not hold the configured VIPs (to write: ${writes.join(', ')})`);
    return wrong;
  }

  settled(whole: boolean): void {
    if (this.stopped) return;
    const was = this.attached;
    this.attached = whole;
    this.announce();
    // Every reconciliation asks BIRD again: a BIRD that came back is told.
    this.announcer?.kick();
    if (was !== whole) this.publish();
  }

  watch(report: () => void): void {
    this.report = report;
  }

  problems(): string[] {
    const p = this.announcer?.problem();
    return p ? [p] : [];
  }

  status(ifaces: Iface[]): string {
    const s = lbStatus(ifaces.map((i) => i.name));
    if (!s.loaded) return 'not loaded';
    const backends = s.vips.reduce((n, v) => n + v.backends.length, 0);
    let line = `${Object.keys(s.interfaces).join(', ')}: ${s.vips.length} VIPs, ${backends} backends, ` +
      `${s.connections}/${s.connections_max} connections`;
    return line + this.healthSummary();
  }

  /** The STATUS= line's part on health and announcements. */
  private healthSummary(): string {
    if (!this.section || !this.checker) return '';
    let line = '';
    const states = [...this.checker.states().values()];
    const down = states.filter((h) => h.health === 'down').length;
    if (states.length) line += `, ${down} of ${states.length} checked backends down`;
    if (this.section.bgp) {
      const vips = Object.values(this.vipRuntime(this.section));
      line += `, ${vips.filter((v) => v.announced).length} of ${vips.length} VIPs announced`;
    }
    return line;
  }

  async stop(leave: boolean): Promise<void> {
    this.stopped = true;
    this.expiry.stop();
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
    await this.checker?.stop();
    const announcer = this.announcer;
    if (leave) {
      // A restart: the announcement stays with the data plane, and the next
      // start overwrites what is published.
      await announcer?.close();
      return;
    }
    // Withdraw first, then keep serving while the routers move the flows
    // away: only then does the program leave its slots.
    if (announcer && await announcer.withdraw()) {
      const wait = announcer.config.withdrawWaitMs;
      this.log(`lb: BGP: serving ${wait} ms more while the routers move the flows away`, 'notice');
      await new Promise((r) => setTimeout(r, wait));
    }
    removeRuntime();
  }

  /** The config the kernel is to hold: the section's, with health's drains. */
  private kernelConfig(section: LbSection): LbConfig {
    const { bgp: _bgp, ...config } = section;
    return kernelConfig(config, this.checker?.states() ?? new Map());
  }

  private changed(e: HealthEvent): void {
    if (this.stopped || !this.section) return;
    const vip = this.section.vips.find((v) => v.backends.some((b) => targetKey(v, b) === e.key));
    let tail = '';
    if (vip) {
      const b = vip.backends.find((x) => targetKey(vip, x) === e.key)!;
      const healthy = this.healthy(vip, this.checker!.states());
      tail = `; ${vipName(vip)} has ${healthy} of ${vip.backends.length} backends healthy${b.weight === 0 ? ` (${e.backend} has weight 0 in the config: it stays drained)` : ''}`;
    }
    this.log(`lb: ${e.line}${tail}`, e.to === 'down' ? 'warning' : 'notice');
    // Transitions that come together are applied together.
    this.pending ??= setImmediate(() => this.flush());
  }

  /** Apply health changes waiting to be applied; a failure is logged and
   *  left to the reconciliation, which sees the difference and repairs. */
  private flush(): void {
    if (!this.pending) return;
    clearImmediate(this.pending);
    this.pending = null;
    if (this.stopped || !this.section) return;
    try {
      const want = this.kernelConfig(this.section);
      const { before, result } = withLbState((maps) => {
        const have = readState(maps);
        return { before: have.config, result: applyConfig(maps, want, have) };
      });
      for (const l of describeChanges(before, want)) this.log(`lb: ${l}`, 'info');
      for (const l of chainWarnings(result)) this.log(`lb: ${l}`, 'warning');
      // A stateless VIP's drain starts a chaining window: its end is due.
      this.expiry.run(this.log);
    } catch (err) {
      this.log(`lb: cannot apply a health change: ${(err as Error).message}; the reconciliation will try again`, 'err');
    }
    this.announce();
    this.publish();
  }

  /** Backends taking new flows: weight above 0 and not down. */
  private healthy(v: Vip, states: ReadonlyMap<string, Pick<HealthState, 'health'>>): number {
    return v.backends.filter((b) => b.weight > 0 && !(b.health && states.get(targetKey(v, b))?.health === 'down')).length;
  }

  private async replaceAnnouncer(bgp: BirdConfig | undefined, lines: string[]): Promise<void> {
    const old = this.announcer;
    this.announcer = null;
    this.wanted.clear();
    // Another file or BIRD: the old one announces nothing any more.
    if (old) await old.withdraw();
    if (bgp) {
      this.announcer = new Announcer(bgp, this.log, () => this.publish());
      lines.push(`lb: BGP: announcing through BIRD at ${bgp.socket} (${bgp.includeFile}, protocols ${bgp.protocol}4 and ${bgp.protocol}6)`);
    } else if (old) {
      lines.push('lb: BGP: no longer announcing (no "bgp" in the config)');
    }
  }

  /** Each VIP's health and why it is announced or not. */
  private vipRuntime(section: LbSection): Record<string, VipRuntime> {
    const states = this.checker?.states() ?? new Map();
    const health = healthStatus(section, states);
    const out: Record<string, VipRuntime> = {};
    for (const v of section.vips) {
      const name = vipName(v);
      const h = health[name];
      const healthy = this.healthy(v, states);
      const announcement = !section.bgp ? 'not announced: no "bgp" in the config'
        : this.attached === false ? 'not announced: the balancer is not in its slot on every interface'
        : healthy === 0 ? 'not announced: no backend takes new flows'
        : `announced: ${healthy} of ${v.backends.length} backends take new flows`;
      out[name] = {
        healthy,
        backends: Object.fromEntries(Object.entries(h.backends).map(([b, x]) => [b, { health: x.health, since: x.since?.toISOString() ?? null, last_error: x.last_error }])),
        announced: section.bgp ? !!this.announcer?.announces(hostPrefix(v.address)) : null,
        announcement,
      };
    }
    return out;
  }

  /** What BIRD is to announce: the address of every VIP with a backend
   *  taking new flows, while the data plane is whole. An address several
   *  VIPs share is announced while any of them qualifies. */
  private announce(): void {
    const section = this.section;
    if (!section || !this.announcer || this.attached === null || this.stopped) return;
    const states = this.checker!.states();
    const next = new Map<string, string>();
    const why = new Map<string, string>();
    for (const v of section.vips) {
      const prefix = hostPrefix(v.address);
      const healthy = this.healthy(v, states);
      if (this.attached && healthy > 0) next.set(prefix, `${vipName(v)}: ${healthy} of ${v.backends.length} backends healthy`);
      else why.set(prefix, this.attached ? `${vipName(v)} has no healthy backend` : 'the balancer is not in its slot on every interface');
    }
    for (const [prefix, reason] of next) {
      if (!this.wanted.has(prefix)) this.log(`lb: BGP: announcing ${prefix} (${reason})`, 'notice');
    }
    for (const prefix of this.wanted.keys()) {
      if (!next.has(prefix)) this.log(`lb: BGP: withdrawing ${prefix} (${why.get(prefix) ?? 'no VIP has it any more'})`, why.has(prefix) ? 'warning' : 'notice');
    }
    const same = next.size === this.wanted.size && [...next.keys()].every((p) => this.wanted.has(p));
    this.wanted = next;
    if (!same) this.announcer.set([...next.keys()]);
  }

  /** Publish health and announcements for `--status` and the metrics. */
  private publish(): void {
    if (!this.section || this.stopped) return;
    const view = this.announcer?.view();
    const bgp = this.section.bgp;
    const state: LbRuntime = {
      pid: process.pid,
      start_ticks: this.startTicks,
      started: this.started.toISOString(),
      updated: new Date().toISOString(),
      attached: this.attached,
      vips: this.vipRuntime(this.section),
      bgp: bgp && view ? {
        socket: bgp.socket, include_file: bgp.includeFile, protocol: bgp.protocol,
        reachable: view.reachable, error: view.error, version: view.version, wanted: view.wanted, accepted: view.accepted,
        sessions: view.sessions, checked: view.checked?.toISOString() ?? null,
      } : null,
    };
    try {
      writeRuntime(state);
    } catch (err) {
      this.log(`lb: cannot publish health and announcements: ${(err as Error).message}`, 'warning');
    }
    const summary = this.healthSummary();
    if (summary !== this.summary) {
      this.summary = summary;
      this.report?.();
    }
  }
}

export function lbService(): ServiceHandler<LbSection> {
  return new LbService();
}
