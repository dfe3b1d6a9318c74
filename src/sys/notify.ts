// sd_notify(3) from libsystemd, so READY/STATUS/WATCHDOG come from the
// daemon's own pid (systemd checks the sender).
import { libsystemd } from '../libbpf/ffi.js';

/** Send a notification: true when sent, false when there is no
 *  NOTIFY_SOCKET (not under systemd). Throws when sending fails. */
export function sdNotify(state: string): boolean {
  const r = libsystemd().sd_notify(0, state);
  if (r < 0) throw new Error(`sd_notify failed with errno ${-r}`);
  return r > 0;
}
