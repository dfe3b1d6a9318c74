// Keeping BIRD announcing what the service wants, in the background: the
// service says which prefixes it wants (set) and asks again at every
// reconciliation (kick); one round at a time writes the include file if it
// differs, reconfigures BIRD if it has not accepted that content yet, and
// asks BIRD for its version and the peers' sessions. Nothing waits for BIRD
// but stop: a missing, stopped or hung BIRD (every wait has the driver's
// deadline) delays no reload, no reconciliation and no watchdog ping. A
// failure is kept for problem() (the service shows it as degraded and logs
// it once) and retried at every kick.
import type { Log } from '../contract.js';
import { BirdDriver, type BgpSession, type BirdConfig, type BirdStatus } from './bird.js';

export class Announcer {
  private readonly driver: BirdDriver;
  private wanted: string[] = [];
  /** What BIRD last accepted; null: unknown (not asked yet, or it failed since). */
  private accepted: string[] | null = null;
  private status: BirdStatus = { reachable: false, sessions: [] };
  private error: string | null = null;
  private checked: Date | null = null;
  private round: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private established = new Map<string, boolean>();

  constructor(
    readonly config: BirdConfig,
    private readonly log: Log,
    /** Called after each round, with anything changed or not. */
    private readonly changed: () => void,
  ) {
    this.driver = new BirdDriver({ socket: config.socket, includeFile: config.includeFile, protocol: config.protocol, peers: config.peers });
  }

  /** Announce exactly these prefixes (`10.0.0.10/32`) from now on. */
  set(prefixes: string[]): void {
    this.wanted = [...prefixes].sort();
    this.kick();
  }

  /** Ask BIRD again: a round now, or right after the one under way. */
  kick(): void {
    if (this.closed) return;
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = (async () => {
      do {
        this.again = false;
        await this.sync();
        this.changed();
      } while (this.again && !this.closed);
      this.round = null;
    })();
  }

  view(): { reachable: boolean; error: string | null; version: string | null; wanted: string[]; accepted: string[] | null; sessions: BgpSession[]; checked: Date | null } {
    return {
      reachable: this.status.reachable, error: this.error, version: this.status.version ?? null,
      wanted: [...this.wanted], accepted: this.accepted && [...this.accepted], sessions: this.status.sessions, checked: this.checked,
    };
  }

  /** What is wrong with BIRD, for the service's degraded state. */
  problem(): string | null {
    return this.error && `BGP: ${this.error}`;
  }

  /** A prefix BIRD has accepted and, as far as we know, announces. */
  announces(prefix: string): boolean {
    return this.status.reachable && !!this.accepted?.includes(prefix);
  }

  /** Stop asking: the round under way ends first; nothing is withdrawn
   *  (a restart keeps the announcement for the next start). */
  async close(): Promise<void> {
    this.closed = true;
    await this.round;
  }

  /** Stop, withdrawing everything; resolves with whether anything may
   *  have been announced before (then the routers need time to move the
   *  flows away). A failure is logged: the file already says nothing, so
   *  a BIRD that starts later reads that. */
  async withdraw(): Promise<boolean> {
    await this.close();
    const before = this.accepted === null || this.accepted.length > 0;
    try {
      const r = await this.driver.withdrawAll();
      if (r.changed || r.reconfigured) this.log(`lb: BGP: withdrew every VIP (${this.config.includeFile} is empty)`, 'notice');
      this.accepted = [];
      this.wanted = [];
    } catch (err) {
      this.log(`lb: BGP: cannot withdraw the VIPs: ${(err as Error).message}`, 'warning');
    }
    return before;
  }

  private async sync(): Promise<void> {
    let error: string | null = null;
    const wanted = this.wanted;
    try {
      await this.driver.announce(wanted);
      this.accepted = wanted;
    } catch (err) {
      error = (err as Error).message;
      // Refused by BIRD: it runs its previous config, which we no longer know for sure.
      this.accepted = null;
    }
    this.status = await this.driver.status();
    this.checked = new Date();
    if (!error && !this.status.reachable) error = this.status.error ?? 'BIRD is unreachable';
    // A failure is logged by the service as it becomes degraded (problem());
    // its end is said here.
    if (!error && this.error) this.log(`lb: BGP: BIRD${this.status.version ? ` ${this.status.version}` : ''} at ${this.config.socket} answers again`, 'notice');
    this.error = error;
    for (const s of this.status.sessions) {
      const was = this.established.get(s.name);
      if (was !== undefined && was !== s.established) {
        if (s.established) this.log(`lb: BGP: session ${s.name} established${s.neighbor ? ` with ${s.neighbor}` : ''}`, 'notice');
        else this.log(`lb: BGP: session ${s.name} ${s.state}: ${s.info}${s.lastError ? ` (${s.lastError})` : ''}`, 'warning');
      }
      this.established.set(s.name, s.established);
    }
  }
}
