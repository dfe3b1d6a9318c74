// The metrics endpoint on a real root array: packets sent through a veth in
// a namespace, the endpoint scraped by a real Prometheus, and what
// Prometheus stored compared with `xdp-root --status --json`.
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MetricsServer, VERSION, buildInfoCollector, formatListen, rootCollector } from '../../src/service/metrics.js';
import { BPF, ok, run, sh, xdpRoot } from '../helpers/cli.js';
import { enterNetns, makeLab, type Lab } from '../helpers/netns.js';
import { promtoolCheckMetrics, startPrometheus, type Prometheus, type VectorSample } from '../helpers/prometheus.js';

const ACTIONS = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT', 'XDP_INVALID_ACTION'];
/** 14 Ethernet + 20 IPv4 + 8 ICMP + 56 bytes of ping payload. */
const PING_BYTES = 98;

let lab: Lab;
let server: MetricsServer | undefined;
let prometheus: Prometheus | undefined;
let leaveNetns: (() => void) | undefined;

/** This thread into the lab's server namespace, where the metrics server
 *  must run: status() finds interfaces and XDP programs in its own
 *  namespace. Sockets made afterwards (the HTTP server, the test's
 *  requests) live there too. */
function enterServerNetns(): void {
  leaveNetns = enterNetns(lab.server);
}

beforeEach(() => {
  lab = makeLab();
});
afterEach(async () => {
  await prometheus?.stop();
  prometheus = undefined;
  await server?.close();
  server = undefined;
  leaveNetns?.();
  leaveNetns = undefined;
  lab.destroy();
});

const root = (args: string[]) => ok(xdpRoot(args, { netns: lab.server }));
const statusJson = () => JSON.parse(root(['--status', '--interface', lab.serverIf, '--json']))[lab.serverIf];
const load = (ifname: string, slot: number, program: string) =>
  root(['--load', '--interface', ifname, '--slot', String(slot), '--object', BPF('xdp_fixtures.o'), '--program', program]);

/** Pings from the client, without blocking the event loop (the metrics
 *  server answers Prometheus from this process meanwhile). */
function ping(count: number, interval: string): Promise<{ sent: number; received: number }> {
  const p = spawn('nsenter', [`--net=/run/netns/${lab.client}`, 'ping', '-n', '-q', '-c', String(count), '-i', interval, '-W', '1', lab.serverIp]);
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  return new Promise((res, rej) =>
    p.on('exit', () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) rej(new Error(`unexpected ping output: ${out}`));
      else res({ sent: Number(m[1]), received: Number(m[2]) });
    }),
  );
}

/** Series by their labels (without job and instance), values as written. */
function byLabels(samples: VectorSample[], keys: string[]): Record<string, string> {
  return Object.fromEntries(samples.map((s) => [keys.map((k) => s.metric[k]).join('/'), s.value]));
}

describe('Prometheus scraping the root array', () => {
  it('stores what xdp-root --status --json says, and rates of the traffic sent', async () => {
    root(['--attach', '--interface', lab.serverIf, '--mode', 'native']);
    load(lab.serverIf, 1, 'xdp_pass_test');
    expect(await ping(10, '0.01')).toEqual({ sent: 10, received: 10 });
    load(lab.serverIf, 5, 'xdp_drop_test');

    enterServerNetns();
    server = await MetricsServer.start({
      listen: { host: '127.0.0.1', port: 0 },
      collectors: [buildInfoCollector(1), rootCollector(() => [lab.serverIf])],
    });
    const target = formatListen(server.address());
    prometheus = await startPrometheus({ targets: [target], netns: lab.server });
    await prometheus.waitForScrapes(3);
    const quiet = Date.now() / 1000;

    // 80 echo requests at 20 a second, every one dropped by slot 5.
    const began = Date.now() / 1000;
    expect(await ping(80, '0.05')).toEqual({ sent: 80, received: 0 });
    const ended = Date.now() / 1000;
    // Traffic has stopped: the second scrape from now began after it.
    await prometheus.waitForScrapes(2);
    const status = statusJson();

    // The counters as the kernel has them: exact, so the comparison below
    // compares something.
    expect(status.subprograms[1]).toMatchObject({ prog_loaded: true, name: 'xdp_pass_test' });
    expect(status.subprograms[1].statistics).toMatchObject({ XDP_PASS: 90, XDP_DROP: 0 });
    expect(status.subprograms[5].statistics).toMatchObject({ XDP_PASS: 0, XDP_DROP: 80 });
    expect(status.statistics).toEqual({ XDP_ABORTED: 0, XDP_DROP: 80, XDP_PASS: 10, XDP_TX: 0, XDP_REDIRECT: 0, XDP_INVALID_ACTION: 0 });
    expect(status.bytes).toMatchObject({ XDP_DROP: 80 * PING_BYTES, XDP_PASS: 10 * PING_BYTES });

    const q = (promql: string) => prometheus!.query(promql);
    expect(await q(`up{job="xdplb"}`)).toEqual([{ metric: { __name__: 'up', job: 'xdplb', instance: target }, value: '1' }]);
    expect(await q('xdplb_build_info')).toEqual([{
      metric: { __name__: 'xdplb_build_info', job: 'xdplb', instance: target, version: VERSION, abi: '1' }, value: '1',
    }]);
    expect(await q(`xdplb_root_attached`)).toMatchObject([{ metric: { interface: lab.serverIf, mode: 'native' }, value: '1' }]);

    // Every series against --status: slots 1 and 5 (the others are empty),
    // the root's own row, and the final verdicts; packets and bytes.
    const expected: Record<string, Record<string, string>> = {};
    const put = (metric: string, key: string, value: number) => ((expected[metric] ??= {})[key] = String(value));
    for (const slot of [1, 5]) {
      const s = status.subprograms[slot];
      for (const a of ACTIONS) {
        put('xdplb_slot_packets_total', `${lab.serverIf}/${slot}/${s.name}/${a}`, s.statistics[a]);
        put('xdplb_slot_bytes_total', `${lab.serverIf}/${slot}/${s.name}/${a}`, s.bytes[a]);
      }
    }
    for (const a of ACTIONS) {
      put('xdplb_root_packets_total', `${lab.serverIf}/${a}`, status.root.statistics[a]);
      put('xdplb_root_bytes_total', `${lab.serverIf}/${a}`, status.root.bytes[a]);
      put('xdplb_verdict_packets_total', `${lab.serverIf}/${a}`, status.statistics[a]);
      put('xdplb_verdict_bytes_total', `${lab.serverIf}/${a}`, status.bytes[a]);
    }
    for (const [metric, want] of Object.entries(expected)) {
      const keys = metric.startsWith('xdplb_slot_') ? ['interface', 'slot', 'program', 'action'] : ['interface', 'action'];
      expect(byLabels(await q(metric), keys), metric).toEqual(want);
    }

    // Rates: nothing before the pings, about 20 packets a second while they
    // ran (over a window inside the 4 s of sending), 98 bytes each.
    const rate = async (promql: string, at: number) => Number((await prometheus!.query(promql, at))[0]?.value);
    const drops = `rate(xdplb_verdict_packets_total{action="XDP_DROP"}[3s])`;
    expect(ended - began).toBeGreaterThan(3.9);
    expect(await rate(drops, quiet)).toBe(0);
    const during = began + 3.5;
    const pps = await rate(drops, during);
    expect(pps).toBeGreaterThan(14);
    expect(pps).toBeLessThan(26);
    const bits = await rate(`8 * rate(xdplb_slot_bytes_total{slot="5",action="XDP_DROP"}[3s])`, during);
    expect(bits).toBeCloseTo(pps * PING_BYTES * 8, 6);
    // Once 3 s have passed after the last ping, the window is quiet again.
    await prometheus.waitForScrapes(3);
    expect(await rate(drops, ended + 4)).toBe(0);

    // The exposition itself passes promtool's lint.
    const body = await (await fetch(`http://${target}/metrics`)).text();
    expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });
  });
});

describe('the cost of a scrape', () => {
  it('reads 4 interfaces with 8 filled slots each in a few milliseconds', async () => {
    const ifnames = [lab.serverIf];
    for (let i = 0; i < 3; i++) {
      const name = `xm${i}${lab.tag}`.slice(0, 15);
      sh('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name.slice(0, 14)}p`], lab.server);
      sh('ip', ['link', 'set', name, 'up'], lab.server);
      ifnames.push(name);
    }
    try {
      for (const ifname of ifnames) {
        root(['--attach', '--interface', ifname, '--mode', 'skb']);
        for (let slot = 0; slot < 8; slot++) load(ifname, slot, 'xdp_pass_test');
      }
      enterServerNetns();
      server = await MetricsServer.start({ listen: { host: '127.0.0.1', port: 0 }, collectors: [rootCollector(() => ifnames)] });

      const body = String(await server.scrape());
      expect(body.match(/^xdplb_slot_packets_total\{/gm)).toHaveLength(4 * 8 * ACTIONS.length);
      expect(body.match(/^xdplb_slot_bytes_total\{/gm)).toHaveLength(4 * 8 * ACTIONS.length);
      expect(body).toContain(`xdplb_slot_packets_total{interface="${ifnames[3]}",slot="7",program="xdp_pass_test",action="XDP_PASS"} 0\n`);
      expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });

      const times: number[] = [];
      for (let i = 0; i < 30; i++) {
        const t = process.hrtime.bigint();
        await server.scrape();
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      times.sort((a, b) => a - b);
      const median = times[times.length >> 1];
      const collect = Number(/^xdplb_scrape_collector_duration_seconds\{collector="root"\} (.*)$/m.exec(String(await server.scrape()))![1]) * 1000;
      console.log(`collector ${collect.toFixed(2)} ms; scrape of ${ifnames.length} interfaces x 8 slots: median ${median.toFixed(2)} ms, max ${times.at(-1)!.toFixed(2)} ms, ${body.length} bytes`);
      // Generous on a shared machine; a scrape every second must stay cheap.
      expect(median).toBeLessThan(100);
    } finally {
      for (const ifname of ifnames.slice(1)) xdpRoot(['--detach', '--interface', ifname], { netns: lab.server });
    }
  });
});

describe('xdp-root run serving metrics', () => {
  it('serves the root array\'s and the filter\'s counters, as their --status --json say, to a real Prometheus', async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { NotifySocket, netnsWithSys, startDaemon } = await import('../helpers/service.js');
    const { BIN } = await import('../helpers/cli.js');
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-metrics-svc-'));
    const notify = [new NotifySocket(), new NotifySocket()];
    const daemons: Array<ReturnType<typeof startDaemon>> = [];
    const port = 20000 + (process.pid % 20000);
    try {
      await Promise.all(notify.map((n) => n.start()));
      // The client's second address is on the drop list.
      sh('ip', ['addr', 'add', '10.201.0.9/24', 'dev', lab.clientIf], lab.client);
      const config = join(dir, 'xdplb.json');
      writeFileSync(config, JSON.stringify({
        interfaces: [lab.serverIf], mode: 'native', metrics: { listen: `127.0.0.1:${port}`, top_prefixes: 1 },
        filter: { enabled: true, drop: [{ prefix: '10.201.0.9/32', tag: 'second' }, { prefix: '192.0.2.0/24', tag: 'never' }] },
      }));
      for (const [i, cmd] of (['xdp-root', 'xdp-filter'] as const).entries()) {
        daemons.push(startDaemon([...netnsWithSys(lab.server), BIN(cmd), 'run', '--config', config], { NOTIFY_SOCKET: notify[i].path }));
        await notify[i].waitFor(/^READY=1$/);
      }
      expect(daemons[0].stderr).toContain(`xdp-root: serving metrics on http://127.0.0.1:${port}/metrics`);
      const target = `127.0.0.1:${port}`;
      // Prometheus runs in the lab's namespace; its API is asked from there.
      enterServerNetns();
      prometheus = await startPrometheus({ targets: [target], netns: lab.server });
      await prometheus.waitForScrapes(2);
      // 20 pings pass from the first address, 20 are dropped from the second.
      expect(await ping(20, '0.02')).toEqual({ sent: 20, received: 20 });
      const from2 = spawn('nsenter', [`--net=/run/netns/${lab.client}`, 'ping', '-n', '-q', '-c', '20', '-i', '0.02', '-W', '1', '-I', '10.201.0.9', lab.serverIp]);
      await new Promise((r) => from2.on('exit', r));
      await prometheus.waitForScrapes(2);

      const filter = JSON.parse(sh(BIN('xdp-filter'), ['--status', '--json', '--interface', lab.serverIf], lab.server))[lab.serverIf];
      expect(filter.stats.ip_drop_count).toBe(20);
      const status = statusJson();
      const q = (promql: string) => prometheus!.query(promql);
      expect(byLabels(await q('xdplb_filter_packets_total{reason="ip_source_listed"}'), ['interface'])).toEqual({ [lab.serverIf]: '20' });
      expect(byLabels(await q('xdplb_filter_prefixes'), ['interface', 'family'])).toEqual({ [`${lab.serverIf}/ipv4`]: '2', [`${lab.serverIf}/ipv6`]: '0' });
      // Bounded: only the most hit prefix (top_prefixes 1).
      expect(byLabels(await q('xdplb_filter_prefix_hits_total'), ['interface', 'prefix', 'tag'])).toEqual({ [`${lab.serverIf}/10.201.0.9/32/second`]: '20' });
      const slot2 = status.subprograms[2];
      expect(byLabels(await q(`xdplb_slot_packets_total{slot="2"}`), ['program', 'action'])).toEqual(
        Object.fromEntries(ACTIONS.map((a) => [`xdp_filter/${a}`, String(slot2.statistics[a])])),
      );
      expect(slot2.statistics.XDP_DROP).toBe(20);
      // The endpoint is in the lab's namespace: scraped there by curl.
      const body = sh('curl', ['-s', `http://${target}/metrics`], lab.server);
      expect(body).toContain('# TYPE xdplb_filter_packets_total counter');
      expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });
      const other = run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${target}/`], { netns: lab.server });
      expect(other.stdout).toBe('404');
    } finally {
      for (const d of daemons.reverse()) {
        d.proc.kill('SIGTERM');
        await d.exited;
      }
      notify.forEach((n) => n.close());
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
