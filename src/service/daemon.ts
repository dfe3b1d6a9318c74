// The life of every xdplb daemon under systemd (Type=notify): start, READY
// and a STATUS line; SIGHUP reload (RELOADING, then READY again; a failed
// reload changes nothing and says so in STATUS until the next good one);
// a reconciliation every few seconds that checks the kernel against the
// config, repairs what the daemon owns and says "degraded" while it cannot;
// WATCHDOG pings at half of WatchdogSec, withheld when a repair fails;
// SIGTERM stop (STOPPING), which leaves the data plane in place when the
// stop is the first half of a restart (the next start adopts it, no flow is
// reset). Notifications are best effort: a notify socket that went away
// is logged once and never stops the daemon.
import { XdplbError } from '../errors.js';
import type { Log, Priority } from '../programs/contract.js';
import { sdNotify } from '../sys/notify.js';
import { restarting } from '../sys/systemd.js';

export type { Log };

export interface Health {
  /** What differs from the config and could not be repaired (yet). */
  problems: string[];
  /** A repair was tried and failed: the watchdog is no longer fed. */
  failed: boolean;
}

export interface Service {
  /** Bring the kernel in line with the config. */
  start(): void | Promise<void>;
  /** Re-read the config and apply only the difference; returns what
   *  changed, one line each; throw to keep the running state as it is. */
  reload(): string[] | Promise<string[]>;
  /** Undo what start and reloads did; `leave`: a restart follows, so the
   *  data plane stays for it to adopt. */
  stop(leave: boolean): void | Promise<void>;
  /** The STATUS= line when all is well. */
  status(): string;
  /** Check the kernel against the config, repair what can be repaired. */
  reconcile(): Health | Promise<Health>;
  /** Given, once started, what to call when the status line changed on
   *  its own (not by a reload or a reconciliation): it is sent again. */
  watch?(report: () => void): void;
}

const PREFIX: Record<Priority, string> = { err: '<3>', warning: '<4>', notice: '<5>', info: '<6>' };

/** One event per line on stderr; under journald (JOURNAL_STREAM is set)
 *  with its syslog priority, so `journalctl -p warning` finds the warnings. */
export function makeLog(command: string): Log {
  const journal = !!process.env.JOURNAL_STREAM;
  return (line, priority = 'info') => {
    process.stderr.write(`${journal ? PREFIX[priority] : ''}${command}: ${line}\n`);
  };
}

export const RECONCILE_MS = 2000;

export function serve(svc: Service, log: Log, opts: { reconcileMs?: number } = {}): Promise<number> {
  let notifyBroken = false;
  const notify = (state: string) => {
    try {
      sdNotify(state);
    } catch (err) {
      if (!notifyBroken) log(`cannot notify systemd (${(err as Error).message}); carrying on without it`, 'warning');
      notifyBroken = true;
    }
  };
  let reloadError: string | null = null;
  let health: Health = { problems: [], failed: false };
  const statusLine = () => {
    let line: string;
    try {
      line = svc.status();
    } catch (err) {
      line = `status unavailable: ${(err as Error).message}`;
    }
    if (health.problems.length) line = `degraded: ${health.problems.join('; ')}; ${line}`;
    if (reloadError) line = `reload failed, running the previous configuration: ${reloadError}; ${line}`;
    return line;
  };
  const report = () => notify(`STATUS=${statusLine()}`);

  return (async () => {
    try {
      await svc.start();
    } catch (err) {
      // What stops a start is for the operator to fix (exit 2: systemd does
      // not restart into it); a kernel failure may pass (exit 1: restarted).
      if (err instanceof XdplbError) throw new XdplbError(err.message, 2);
      throw err;
    }
    // One message: `systemctl start` returns on READY, and its STATUS
    // must be there already for whoever looks next.
    notify(`READY=1\nSTATUS=${statusLine()}`);
    svc.watch?.(report);

    let busy = false;
    let stopping = false;
    const reconcile = async () => {
      if (busy || stopping) return;
      busy = true;
      try {
        const before = health.problems.join('; ');
        health = await svc.reconcile();
        const now = health.problems.join('; ');
        if (now !== before) {
          if (now) log(`degraded: ${now}`, health.failed ? 'err' : 'warning');
          else log('the data plane matches the configuration again', 'notice');
          report();
        }
      } catch (err) {
        health = { problems: [`cannot check the kernel: ${(err as Error).message}`], failed: true };
        log(health.problems[0], 'err');
        report();
      } finally {
        busy = false;
      }
    };
    const checker = setInterval(() => void reconcile(), opts.reconcileMs ?? RECONCILE_MS);

    const usec = Number(process.env.WATCHDOG_USEC ?? 0);
    const pid = Number(process.env.WATCHDOG_PID ?? process.pid);
    const watchdog = usec > 0 && pid === process.pid
      ? setInterval(() => {
          if (!health.failed) notify('WATCHDOG=1');
        }, Math.max(1, Math.floor(usec / 2000)))
      : null;

    return new Promise<number>((resolve) => {
      process.on('SIGHUP', () => {
        if (busy || stopping) {
          // One change at a time: try again once the current one is done.
          setTimeout(() => process.emit('SIGHUP', 'SIGHUP'), 50);
          return;
        }
        busy = true;
        notify('RELOADING=1');
        void (async () => {
          try {
            const changed = await svc.reload();
            reloadError = null;
            for (const line of changed) log(line, 'notice');
            log(changed.length ? `reloaded: ${changed.length} change(s)` : 'reloaded: nothing changed', 'notice');
          } catch (err) {
            reloadError = (err as Error).message.replace(/\s*\n\s*/g, ' ');
            log(`reload failed, keeping the running configuration: ${reloadError}`, 'err');
          } finally {
            busy = false;
          }
          notify(`READY=1\nSTATUS=${statusLine()}`);
          void reconcile();
        })();
      });
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        notify('STOPPING=1');
        clearInterval(checker);
        if (watchdog) clearInterval(watchdog);
        while (busy) await new Promise((r) => setTimeout(r, 20));
        let leave = false;
        try {
          leave = restarting();
        } catch (err) {
          log(`cannot tell whether this stop is a restart (${(err as Error).message}): taking the data plane down`, 'warning');
        }
        try {
          await svc.stop(leave);
          log(leave ? `restarting on ${signal}: the data plane stays for the next start` : `stopped on ${signal}`, 'notice');
          resolve(0);
        } catch (err) {
          log(`stopping on ${signal}: ${(err as Error).message}`, 'err');
          resolve(1);
        }
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
    });
  })();
}
