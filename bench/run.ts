// `make bench`: dispatch cost under BPF_PROG_TEST_RUN and CLI wall time, in
// one run; prints tables and writes bench/results/latest.json. Exits non-zero
// when a measurement fails; a missed goal is reported, not fatal.
//
// make bundles this file to build/bench/run.mjs (Node 20 runs no TypeScript).
// That is two levels below the checkout, like test/helpers/, so the helpers'
// paths (BIN, BPF, ROOT_DIR), which resolve from import.meta.dirname, still
// point into the checkout.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { table } from '../src/format.js';
import { ROOT_DIR } from '../test/helpers/cli.js';
import { measureCli } from './cli.js';
import { measureDispatch } from './dispatch.js';
import { PREFIX6_COUNT, measureFilter } from './filter.js';
import { measureSampler } from './sampler.js';
import { GOALS as LB_GOALS, measureLb } from './lb.js';
import { measureDsr } from './dsr.js';
import { STATELESS_GOALS, measureStateless } from './stateless.js';
import { measureScrape } from './metrics.js';
import { envCount } from './stats.js';
import { udp4 } from '../test/helpers/packets.js';

const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
// The kernel reports whole nanoseconds; only a median of an even count has a half.
const ns = (n: number) => `${Number.isInteger(n) ? n : n.toFixed(1)} ns`;
const ms = (n: number) => `${n.toFixed(1)} ms`;
const per = (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`;

async function main(): Promise<void> {
  const rounds = envCount('BENCH_ROUNDS', 7);
  const repeat = envCount('BENCH_REPEAT', 200_000);
  const cliRuns = envCount('BENCH_CLI_RUNS', 21);
  // BENCH_ONLY=lb,dsr runs only those parts (dispatch, filter, sampler, lb,
  // dsr, stateless, metrics, cli): the whole run takes the machine for minutes.
  const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
  const parts = ['dispatch', 'filter', 'sampler', 'lb', 'dsr', 'stateless', 'metrics', 'cli'];
  for (const p of only) if (!parts.includes(p)) throw new Error(`BENCH_ONLY='${process.env.BENCH_ONLY}': expected parts among ${parts.join(', ')}`);
  const want = (part: string) => !only.length || only.includes(part);
  const meta = {
    date: new Date().toISOString(),
    kernel: release(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
  };
  console.log(`xdplb bench: kernel ${meta.kernel}, node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel}), ${meta.date}`);
  console.log('Absolute times are noisy on shared machines; compare the differences and ratios.\n');

  const dispatch = want('dispatch') ? measureDispatch(rounds, repeat) : undefined;
  if (dispatch) {
    console.log(`BPF_PROG_TEST_RUN, ${dispatch.frameBytes}-byte UDP frame, ${rounds} rounds x ${repeat} repeats (ns/packet):`);
    console.log(table(
      ['CASE', 'PROGRAM', 'MEDIAN', 'MIN', 'MAX', 'MEDIAN - FLOOR'],
      dispatch.cases.map((c) => [c.name, c.what, ns(c.ns.median), ns(c.ns.min), ns(c.ns.max), ns(c.aboveFloor)]),
    ));
  }

  const filter = want('filter') ? measureFilter(rounds, repeat) : undefined;
  if (filter) {
    console.log(`\nFilter in slot 2 with ${filter.prefixes} IPv4 and ${PREFIX6_COUNT} IPv6 prefixes listed, ${rounds} rounds x ${repeat} repeats (ns/packet):`);
    console.log(table(
      ['CASE', 'PROGRAM', 'MEDIAN', 'MIN', 'MAX', 'MEDIAN - FLOOR'],
      [
        ...filter.cases.map((c) => [c.name, c.what, ns(c.ns.median), ns(c.ns.min), ns(c.ns.max), ns(c.aboveFloor)]),
        ['first fragment -> PTB', `one run per call, ${filter.ptb.runs} calls; floor run alike: ${ns(filter.ptb.floor.median)}`,
          ns(filter.ptb.ns.median), ns(filter.ptb.ns.min), ns(filter.ptb.ns.max), ns(filter.ptb.aboveFloor)],
      ],
    ));
  }

  const sampler = want('sampler') ? measureSampler(rounds, repeat) : undefined;
  if (sampler) {
    console.log(`\nSampler through the root, slot 1, ${udp4().length}-byte UDP frame (ns/packet; rate-1 cases repeat as often as the ring holds):`);
    console.log(table(
      ['CASE', 'PROGRAM', 'REPEAT', 'MEDIAN', 'MIN', 'MAX', 'MEDIAN - FLOOR'],
      sampler.cases.map((c) => [c.name, c.what, c.repeat, ns(c.ns.median), ns(c.ns.min), ns(c.ns.max), ns(c.aboveFloor)]),
    ));
    console.log(`\nRing buffer drain (ring filled at rate 1, then read, decoded and encoded as pcapng; ${rounds} rounds):`);
    console.log(table(
      ['FRAMES', 'SAMPLES PER FILL', 'MEDIAN', 'MIN', 'MAX', 'LOST'],
      sampler.drain.map((d) => [d.name, d.samplesPerFill, per(d.rate.median), per(d.rate.min), per(d.rate.max), d.lost]),
    ));
  }

  const lb = want('lb') ? measureLb(rounds, repeat) : undefined;
  if (lb) {
    console.log(`\nLoad balancer (xdp_lb in slot 7) through the root, TCP frames, FIB lookups in a namespace, ${rounds} rounds x ${repeat} repeats (ns/packet):`);
    console.log(table(
      ['CASE', 'WHAT', 'MEDIAN', 'MIN', 'MAX', 'MEDIAN - FLOOR'],
      lb.cases.map((c) => [c.name, c.what, ns(c.ns.median), ns(c.ns.min), ns(c.ns.max), ns(c.aboveFloor)]),
    ));
    console.log('Control plane, validate + apply in process (ms):');
    console.log(table(
      ['CHANGE', 'MEDIAN', 'MIN', 'MAX'],
      [
        ['100 VIPs x 100 backends, 65537-entry tables, from empty', ms(lb.applyLargeMs.median), ms(lb.applyLargeMs.min), ms(lb.applyLargeMs.max)],
        ['one backend\'s weight on one VIP', ms(lb.applyOneMs.median), ms(lb.applyOneMs.min), ms(lb.applyOneMs.max)],
      ],
    ));
  }

  const dsr = want('dsr') ? measureDsr(rounds, repeat, envCount('BENCH_SINGLE_RUNS', 2001)) : undefined;
  if (dsr) {
    console.log(`\nDirect server return (xdp_lb slot 7) and the decapsulator (xdp_decap slot 6) through the root, TCP, ${rounds} rounds x ${repeat} repeats unless said (ns/packet):`);
    console.log(table(
      ['CASE', 'WHAT', 'REPEAT', 'MEDIAN', 'MIN', 'MAX', 'MEDIAN - FLOOR', 'BALANCER\'S SHARE'],
      dsr.cases.map((c) => [c.name, c.what, c.repeat, ns(c.ns.median), ns(c.ns.min), ns(c.ns.max), ns(c.aboveFloor), c.estimate === undefined ? '' : ns(c.estimate)]),
    ));
  }

  const stateless = want('stateless') ? await measureStateless(rounds, repeat, envCount('BENCH_SINGLE_RUNS', 2001)) : undefined;
  if (stateless) {
    console.log(`\nStateless VIPs (xdp_lb slot 7) and chaining in the decapsulator (xdp_decap slot 6) through the root, TCP over IPv4, ${rounds} rounds x ${repeat} repeats unless said (ns/packet):`);
    console.log(table(
      ['CASE', 'WHAT', 'REPEAT', 'MEDIAN', 'MIN', 'MAX', 'MEDIAN - FLOOR', 'ESTIMATE'],
      stateless.cases.map((c) => [c.name, c.what, c.repeat, ns(c.ns.median), ns(c.ns.min), ns(c.ns.max), ns(c.aboveFloor), c.estimate === undefined ? '' : ns(c.estimate)]),
    ));
    console.log('ESTIMATE: a loop\'s balancer share (loop - decapsulator variant 1 + root); for "established, previous backend": the decapsulator with the lookup (variant 1 + that loop - the SYN\'s).');
  }

  const metrics = want('metrics') ? await measureScrape(envCount('BENCH_SCRAPES', 30)) : undefined;
  if (metrics) {
    console.log(`\nPrometheus scrape over HTTP, every collector, the balancer holding 100 VIPs x 100 backends (${metrics.series} series, ${metrics.bytes} bytes), ${metrics.runs} scrapes:`);
    console.log(table(
      ['WHAT', 'MEDIAN', 'MIN', 'MAX'],
      [
        ['whole scrape, by curl over HTTP', ms(metrics.ms.median), ms(metrics.ms.min), ms(metrics.ms.max)],
        ['rendered in process (no HTTP)', ms(metrics.renderMs.median), ms(metrics.renderMs.min), ms(metrics.renderMs.max)],
        ['  CPU time of one render (every thread)', ms(metrics.renderCpuMs.median), ms(metrics.renderCpuMs.min), ms(metrics.renderCpuMs.max)],
        ...Object.entries(metrics.collectorsMs).map(([c, v]) => [`  collector ${c} (last scrape)`, ms(v), '', '']),
      ],
    ));
  }

  const cli = want('cli') ? measureCli(cliRuns) : undefined;
  if (cli) {
    console.log(`\nCLI wall time under nsenter, ${cliRuns} runs each, interleaved:`);
    console.log(table(
      ['COMMAND', 'MEDIAN', 'MIN', 'MAX'],
      [
        ['xdp-root --status --json', ms(cli.statusMs.median), ms(cli.statusMs.min), ms(cli.statusMs.max)],
        ['node -e 0', ms(cli.nodeMs.median), ms(cli.nodeMs.min), ms(cli.nodeMs.max)],
      ],
    ));
  }

  console.log('\nGoals:');
  console.log(table(
    ['MEASURE', 'RESULT', 'GOAL', ''],
    [
      ...(dispatch ? [['dispatch overhead (through root - direct)', ns(dispatch.overheadNs), `<= ${dispatch.goalNs} ns`, verdict(dispatch.pass)]] : []),
      ...(sampler ? [
        ['sampler at rate 0, through the root, above floor', ns(sampler.rate0AboveFloor), `<= ${sampler.goalNs} ns`, verdict(sampler.passNs)],
        ['  of which the sampler itself (minus a pass program)', ns(sampler.samplerRate0Ns), '', ''],
        ['sample drain, zero loss (slowest case, median)', per(Math.min(...sampler.drain.map((d) => d.rate.median))), `>= ${per(sampler.drainGoal)}`, verdict(sampler.passDrain)],
      ] : []),
      ...(metrics ? [['scrape, 100 VIPs x 100 backends (median)', ms(metrics.ms.median), `<= ${metrics.goal} ms`, verdict(metrics.pass)]] : []),
      ...(cli ? [['status / node -e 0 (medians)', `${cli.ratio.toFixed(2)}x`, `<= ${cli.goal}x`, verdict(cli.pass)]] : []),
      ...(filter ? [[`filter: clean IPv4 TCP, ${filter.prefixes} prefixes, above floor`, ns(filter.cleanAboveFloor), `<= ${filter.goalNs} ns`, verdict(filter.pass)]] : []),
      ...(lb ? lb.cases.filter((c) => c.goal !== undefined).map((c) => [`lb ${c.name}, above floor`, ns(c.aboveFloor), `<= ${c.goal} ns`, verdict(c.aboveFloor <= c.goal!)]) : []),
      ...(dsr ? dsr.cases.filter((c) => c.goal !== undefined).map((c) => {
        const v = c.estimate ?? c.aboveFloor;
        return [`${c.name}${c.estimate === undefined ? '' : ' (balancer\'s share)'}, above floor`, ns(v), `<= ${c.goal} ns`, verdict(v <= c.goal!)];
      }) : []),
      ...(stateless ? [
        ...stateless.cases.filter((c) => c.goal !== undefined).map((c) => {
          const v = c.estimate ?? c.aboveFloor;
          return [`${c.name}${c.estimate === undefined ? '' : ' (estimate)'}, above floor`, ns(v), `<= ${c.goal} ns`, verdict(v <= c.goal!)];
        }),
        ['stateless SYN / established (balancer\'s shares)', `${stateless.synRatio.toFixed(2)}x`, `<= ${STATELESS_GOALS.synRatio}x`, verdict(stateless.synRatio <= STATELESS_GOALS.synRatio)],
      ] : []),
      ...(lb ? [
        ['lb apply 100 x 100', ms(lb.applyLargeMs.median), `<= ${LB_GOALS.applyLargeMs} ms`, verdict(lb.applyLargeMs.median <= LB_GOALS.applyLargeMs)],
        ['lb apply one-backend change', ms(lb.applyOneMs.median), `<= ${LB_GOALS.applyOneMs} ms`, verdict(lb.applyOneMs.median <= LB_GOALS.applyOneMs)],
      ] : []),
    ],
  ));

  const dir = join(ROOT_DIR, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'latest.json');
  writeFileSync(file, `${JSON.stringify({ meta, dispatch, filter, sampler, lb, dsr, stateless, metrics, cli }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`);
  console.log(`\nWrote ${file}`);
}

main().catch((err) => {
  process.stderr.write(`\nbench: FAILED: ${err instanceof Error ? err.stack ?? err.message : err}\n`);
  process.exitCode = 1;
});
