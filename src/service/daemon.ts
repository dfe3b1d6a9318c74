// The life of every xdplb daemon under systemd (Type=notify): start, READY
// and a STATUS line, WATCHDOG pings at half of WatchdogSec, SIGHUP reload
// (RELOADING, then READY again; a failed reload changes nothing), SIGTERM
// stop (STOPPING). Every message goes through sd_notify from this pid.
import { sdNotify } from '../libbpf/index.js';
import { XdplbError } from '../errors.js';

export interface Service {
  /** Bring the kernel in line with the config. */
  start(): void;
  /** Re-read the config and apply only the difference; throw to keep the
   *  running state as it is. */
  reload(): void;
  /** Undo what start and reloads did. */
  stop(): void;
  /** The STATUS= line: what `systemctl status` shows. */
  status(): string;
}

export type Log = (line: string) => void;

export function serve(svc: Service, log: Log): Promise<number> {
  try {
    svc.start();
  } catch (err) {
    // What stops a start is for the operator to fix (exit 2: systemd does
    // not restart into it); a kernel failure may pass (exit 1: restarted).
    if (err instanceof XdplbError) throw new XdplbError(err.message, 2);
    throw err;
  }
  const report = () => sdNotify(`STATUS=${svc.status()}`);
  sdNotify('READY=1');
  report();

  const usec = Number(process.env.WATCHDOG_USEC ?? 0);
  const pid = Number(process.env.WATCHDOG_PID ?? process.pid);
  const timer =
    usec > 0 && pid === process.pid
      ? setInterval(() => sdNotify('WATCHDOG=1'), Math.max(1, Math.floor(usec / 2000)))
      : setInterval(() => {}, 1 << 30); // keeps the event loop alive

  return new Promise((resolve) => {
    process.on('SIGHUP', () => {
      sdNotify('RELOADING=1');
      try {
        svc.reload();
      } catch (err) {
        log(`reload failed, keeping the running configuration: ${(err as Error).message}`);
      }
      sdNotify('READY=1');
      report();
    });
    const stop = (signal: string) => {
      sdNotify('STOPPING=1');
      clearInterval(timer);
      try {
        svc.stop();
        log(`stopped on ${signal}`);
        resolve(0);
      } catch (err) {
        log(`stopping on ${signal}: ${(err as Error).message}`);
        resolve(1);
      }
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
