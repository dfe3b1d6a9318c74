// Wall time of `xdp-root --status --json` against a bare Node start-up, both
// under nsenter in a lab whose server side has a root attached and two slots
// filled, so the status call reads a realistic state.
import { spawnSync } from 'node:child_process';
import { BIN, BPF, ok, xdpRoot } from '../test/helpers/cli.js';
import { makeLab, type Lab } from '../test/helpers/netns.js';
import { summarize, type Summary } from './stats.js';

export const RATIO_GOAL = 1.5;

export interface CliResult {
  runs: number;
  statusMs: Summary;
  nodeMs: Summary;
  /** Median status time over median `node -e 0` time. */
  ratio: number;
  goal: number;
  pass: boolean;
}

function timed(argv: string[]): { ms: number; stdout: string } {
  const start = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return { ms, stdout: r.stdout };
}

/** The status must show what the lab set up, or we would time an error path. */
function checkStatus(lab: Lab, stdout: string): void {
  const s = JSON.parse(stdout)[lab.serverIf];
  const slot = (n: number) => (s?.subprograms?.[n]?.prog_loaded ? s.subprograms[n].name : null);
  if (!s?.root_loaded || s.mode !== 'native' || slot(1) !== 'xdp_pass_test' || slot(5) !== 'xdp_drop_test') {
    const seen = { root_loaded: s?.root_loaded, mode: s?.mode, slot1: slot(1), slot5: slot(5) };
    throw new Error(`unexpected status of ${lab.serverIf}: ${JSON.stringify(seen)}`);
  }
}

export function measureCli(runs: number): CliResult {
  const lab = makeLab();
  const netns = lab.server;
  try {
    ok(xdpRoot(['--attach', '--interface', lab.serverIf, '--mode', 'native'], { netns }));
    for (const [slot, program] of [['1', 'xdp_pass_test'], ['5', 'xdp_drop_test']]) {
      ok(xdpRoot(['--load', '--interface', lab.serverIf, '--slot', slot, '--object', BPF('xdp_fixtures.o'), '--program', program], { netns }));
    }

    const enter = ['nsenter', `--net=/run/netns/${netns}`];
    const status = [...enter, BIN('xdp-root'), '--status', '--json'];
    const node = [...enter, 'node', '-e', '0'];
    // One untimed run each warms the page cache; it also checks the output.
    checkStatus(lab, timed(status).stdout);
    timed(node);
    const statusMs: number[] = [];
    const nodeMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      statusMs.push(timed(status).ms);
      nodeMs.push(timed(node).ms);
    }

    const s = summarize(statusMs);
    const n = summarize(nodeMs);
    const ratio = s.median / n.median;
    return { runs, statusMs: s, nodeMs: n, ratio, goal: RATIO_GOAL, pass: ratio <= RATIO_GOAL };
  } finally {
    detach(lab);
    lab.destroy();
  }
}

/** Not fatal, and never masks the error that got us here: removing the
 *  namespaces drops the attachment and the pins anyway. */
function detach(lab: Lab): void {
  try {
    ok(xdpRoot(['--detach', '--interface', lab.serverIf], { netns: lab.server }));
  } catch (err) {
    process.stderr.write(`bench: warning: detach failed: ${err instanceof Error ? err.message.trim() : err}\n`);
  }
}
