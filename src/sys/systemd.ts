// What systemd says about the unit this process runs as: whether a stop is
// the first half of a restart. A restarted daemon adopts the data plane,
// so a restart leaves it in place and resets no flow; only a real stop
// takes it down. Asked over systemd's private bus socket (root only, no
// D-Bus daemon needed, which minimal systems lack).
import { alloc, free, decodeString, libsystemd, readPointer, view } from '../libbpf/ffi.js';

const DEST = 'org.freedesktop.systemd1';
const PRIVATE_BUS = 'unix:path=/run/systemd/private';
const RESTART_JOBS = new Set(['restart', 'try-restart', 'reload-or-restart', 'reload-or-try-restart']);

/** The job systemd runs on this process's unit right now ('restart',
 *  'stop', ...), null when none or when not under systemd. Throws with the
 *  reason when systemd cannot be asked. */
export function unitJob(): string | null {
  if (!process.env.INVOCATION_ID) return null;
  const sd = libsystemd();
  const unit: Array<string | null> = [null];
  let r = sd.sd_pid_get_unit(process.pid, unit);
  if (r < 0 || !unit[0]) throw new Error(`sd_pid_get_unit failed (errno ${-r})`);
  const bus: unknown[] = [null];
  r = sd.sd_bus_new(bus);
  if (r < 0) throw new Error(`sd_bus_new failed (errno ${-r})`);
  const error = alloc(24); // sd_bus_error { name, message, _need_free }, zeroed
  view(error, 24).fill(0);
  try {
    if ((r = sd.sd_bus_set_address(bus[0], PRIVATE_BUS)) < 0 || (r = sd.sd_bus_start(bus[0])) < 0) {
      throw new Error(`cannot connect to systemd's bus (errno ${-r})`);
    }
    const path: Array<string | null> = [null];
    r = sd.sd_bus_path_encode('/org/freedesktop/systemd1/unit', unit[0], path);
    if (r < 0 || !path[0]) throw new Error(`sd_bus_path_encode failed (errno ${-r})`);
    const reply: unknown[] = [null];
    r = sd.sd_bus_get_property(bus[0], DEST, path[0], 'org.freedesktop.systemd1.Unit', 'Job', error, reply, '(uo)');
    if (r < 0) throw new Error(`cannot read the Job of ${unit[0]} (errno ${-r})`);
    const id = alloc(4);
    const jobPath = alloc(8);
    try {
      r = sd.sd_bus_message_read(reply[0], '(uo)', 'uint32_t *', id, 'void *', jobPath);
      sd.sd_bus_message_unref(reply[0]);
      if (r < 0) throw new Error(`cannot decode the Job of ${unit[0]} (errno ${-r})`);
      const objectPath = decodeString(readPointer(jobPath));
      if (!objectPath || objectPath === '/') return null;
      const type: Array<string | null> = [null];
      r = sd.sd_bus_get_property_string(bus[0], DEST, objectPath, 'org.freedesktop.systemd1.Job', 'JobType', error, type);
      if (r < 0) throw new Error(`cannot read the type of job ${objectPath} (errno ${-r})`);
      return type[0];
    } finally {
      free(id);
      free(jobPath);
    }
  } finally {
    sd.sd_bus_error_free(error);
    free(error);
    sd.sd_bus_flush_close_unref(bus[0]);
  }
}

/** Whether this stop is the first half of a restart. */
export function restarting(): boolean {
  const job = unitJob();
  return job !== null && RESTART_JOBS.has(job);
}
