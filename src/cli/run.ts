// The `run` verb of the subprogram commands: their long-running form under
// systemd (xdplb-<name>.service), configured by the service config file.
import { UsageError } from '../errors.js';
import { DEFAULT_CONFIG } from '../service/defaults.js';
import type { SectionHandler } from '../service/section-service.js';
import { requirePrivileges } from './main.js';

export const RUN_OPTION = {
  config: { type: 'string', describe: `With run: the config file (default ${DEFAULT_CONFIG})` },
} as const;

export const RUN_DESCRIPTION = 'Run as a service (systemd Type=notify), bound to xdplb-root: reload on SIGHUP, detach on SIGTERM';

/** The config file when the command line is `<command> run`, null when it is
 *  an ordinary action; `run` takes no action flags, --config only `run`. */
export function runRequest(
  command: string, argv: { _: Array<string | number>; config?: unknown }, actions: readonly string[],
): string | null {
  const flags = argv as unknown as Record<string, unknown>;
  if (argv._[0] !== 'run') {
    if (argv.config !== undefined) throw new UsageError(`--config goes with run (see ${command} --help)`);
    return null;
  }
  const stray = actions.find((a) => flags[a] !== undefined && flags[a] !== false);
  if (stray) throw new UsageError(`run takes no --${stray}: it reads what to do from --config`);
  if (Array.isArray(argv.config)) throw new UsageError('--config given more than once: expected one value');
  return (argv.config as string | undefined) ?? DEFAULT_CONFIG;
}

/** `<command> run`: the subprogram's service. Its code is loaded only here,
 *  so the other actions do not pay for the config parser at start-up. */
export async function runSection<T>(
  command: string, config: string, handler: () => Promise<SectionHandler<T>>,
): Promise<number> {
  requirePrivileges();
  const [{ runSectionService }, h] = await Promise.all([import('../service/section-service.js'), handler()]);
  return runSectionService(h, command, config);
}
