// sd_notify(3) from libsystemd, so READY/STATUS/WATCHDOG come from the
// daemon's own pid (systemd checks the sender). Loaded on first use only.
import koffi from 'koffi';

let sdNotifyFn: ((unset: number, state: string) => number) | null = null;

/** Send a notification; false when there is no NOTIFY_SOCKET (not under systemd). */
export function sdNotify(state: string): boolean {
  sdNotifyFn ??= koffi.load('libsystemd.so.0').func('int sd_notify(int unset_environment, const char *state)');
  const r = sdNotifyFn(0, state);
  if (r < 0) throw new Error(`sd_notify failed with errno ${-r}`);
  return r > 0;
}
