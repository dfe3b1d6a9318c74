// The balancer's metrics on a real lab: HTTP requests through a VIP, then
// every per-VIP and per-backend series compared with what
// `xdp-lb --status --json` says at the same quiet moment, and the
// exposition linted by promtool.
import { afterEach, describe, expect, it } from 'vitest';
import { subprogram } from '../../src/programs/index.js';
import { MetricsServer } from '../../src/service/metrics.js';
import { BIN, ok, run, xdpRoot } from '../helpers/cli.js';
import { inNs, makeLbLab, startHttpBackends, type LbLab } from '../helpers/lblab.js';
import { enterNetns } from '../helpers/netns.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';

let lab: LbLab | undefined;
let server: MetricsServer | undefined;
let leave: (() => void) | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  leave?.();
  leave = undefined;
  lab?.destroy();
  lab = undefined;
});

function enter(ns: string): void {
  leave = enterNetns(ns);
}

/** Sample lines of an exposition: series (name and labels) -> value. */
const series = (body: string) => new Map(body.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
  const at = l.lastIndexOf(' ');
  return [l.slice(0, at), l.slice(at + 1)];
}));

/** The lab's balancer with a VIP to both backends, and `requests` requests
 *  through it; its xdp-lb, run in the balancer's namespace. */
async function balancerWithTraffic(vip: string, requests: number): Promise<{ l: LbLab; lb: (args: string[]) => string }> {
  lab = makeLbLab();
  await startHttpBackends(lab);
  const l = lab;
  const lb = (args: string[]) => ok(run(BIN('xdp-lb'), args, { netns: l.ns.lb }));
  ok(xdpRoot(['--attach', '--interface', l.lbIf, '--mode', 'native'], { netns: l.ns.lb }));
  lb(['--attach', '--interface', l.lbIf]);
  lb(['--vip-add', vip, '--backend', '10.0.0.2,10.0.0.3', '--nat-source', '10.0.0.10']);
  for (let i = 0; i < requests; i++) expect(inNs(l.ns.client, 'curl', ['-s', '--max-time', '2', 'http://10.0.0.10:8000/who'])).toMatch(/^b[12]$/);
  return { l, lb };
}

describe('the balancer\'s metrics', () => {
  it('are what xdp-lb --status --json says, per VIP and per backend, after real traffic', async () => {
    const { l, lb } = await balancerWithTraffic('tcp:10.0.0.10:8000', 20);
    // Quiet: the last FINs are counted before the comparison.
    const status = () => JSON.parse(lb(['--status', '--json']));
    let before = status();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const now = status();
      if (JSON.stringify(now.vips) === JSON.stringify(before.vips)) break;
      before = now;
    }

    enter(l.ns.lb);
    server = await MetricsServer.start({ listen: { host: '127.0.0.1', port: 0 }, collectors: [subprogram('lb').metrics(() => [l.lbIf], { top: 20 })] });
    const body = String(await server.scrape());
    leave!();
    leave = undefined;
    const after = status();
    expect(after.vips).toEqual(before.vips);

    const got = series(body);
    const [v] = after.vips;
    expect(v.counters.new_conns).toBe(20);
    const vip = 'tcp:10.0.0.10:8000';
    const want = new Map<string, string>([
      [`xdplb_lb_vip_packets_total{vip="${vip}",direction="in"}`, String(v.counters.packets)],
      [`xdplb_lb_vip_packets_total{vip="${vip}",direction="reply"}`, String(v.counters.reply_packets)],
      [`xdplb_lb_vip_bytes_total{vip="${vip}",direction="in"}`, String(v.counters.bytes)],
      [`xdplb_lb_vip_bytes_total{vip="${vip}",direction="reply"}`, String(v.counters.reply_bytes)],
      [`xdplb_lb_vip_connections_total{vip="${vip}"}`, '20'],
      [`xdplb_lb_vip_events_total{vip="${vip}",event="no_backend"}`, String(v.counters.no_backend)],
      ['xdplb_lb_connections', String(after.connections)],
      ['xdplb_lb_nat_ports', String(after.nat_ports)],
      [`xdplb_lb_attached{interface="${l.lbIf}"}`, '1'],
    ]);
    for (const b of v.backends) {
      const backend = `${b.address}:${b.port}`;
      want.set(`xdplb_lb_backend_packets_total{vip="${vip}",backend="${backend}",direction="in"}`, String(b.counters.packets));
      want.set(`xdplb_lb_backend_packets_total{vip="${vip}",backend="${backend}",direction="reply"}`, String(b.counters.reply_packets));
      want.set(`xdplb_lb_backend_bytes_total{vip="${vip}",backend="${backend}",direction="in"}`, String(b.counters.bytes));
      want.set(`xdplb_lb_backend_connections_total{vip="${vip}",backend="${backend}"}`, String(b.counters.new_conns));
      want.set(`xdplb_lb_backend_weight{vip="${vip}",backend="${backend}",state="active"}`, '1');
    }
    expect(Object.fromEntries([...want.keys()].map((k) => [k, got.get(k)]))).toEqual(Object.fromEntries(want));
    // Traffic went both ways through both backends, so the comparison compares something.
    expect(v.counters.reply_packets).toBeGreaterThan(0);
    expect(v.backends.map((b: { counters: { new_conns: number } }) => b.counters.new_conns).every((n: number) => n > 0)).toBe(true);
    expect(promtoolCheckMetrics(body)).toEqual({ code: 0, findings: [] });
  });

  it('follow the balancer from one scrape to the next: weights, backends added and removed, a VIP added', async () => {
    const vip = 'tcp:10.0.0.10:8000';
    const { l, lb } = await balancerWithTraffic(vip, 10);
    enter(l.ns.lb);
    server = await MetricsServer.start({ listen: { host: '127.0.0.1', port: 0 }, collectors: [subprogram('lb').metrics(() => [l.lbIf], { top: 20 })] });
    const s = server;

    /** Every per-backend series of a scrape, and what the status says they are. */
    const backendSeries = (body: string) => new Map([...series(body)].filter(([k]) => /^xdplb_lb_backend_(packets_total|bytes_total|connections_total|weight)\{/.test(k)));
    const fromStatus = () => {
      const want = new Map<string, string>();
      for (const v of JSON.parse(lb(['--status', '--json'])).vips) {
        const name = `${v.protocol}:${v.address}:${v.port}`;
        for (const b of v.backends) {
          const at = `vip="${name}",backend="${b.address}:${b.port}"`;
          want.set(`xdplb_lb_backend_packets_total{${at},direction="in"}`, String(b.counters.packets));
          want.set(`xdplb_lb_backend_packets_total{${at},direction="reply"}`, String(b.counters.reply_packets));
          want.set(`xdplb_lb_backend_bytes_total{${at},direction="in"}`, String(b.counters.bytes));
          want.set(`xdplb_lb_backend_bytes_total{${at},direction="reply"}`, String(b.counters.reply_bytes));
          want.set(`xdplb_lb_backend_connections_total{${at}}`, String(b.counters.new_conns));
          want.set(`xdplb_lb_backend_weight{${at},state="${b.removed ? 'removed' : 'active'}"}`, b.removed ? '0' : String(b.weight));
        }
      }
      return want;
    };
    // Three scrapes of the same backends: the last writes the text it kept.
    const scrapes = async () => {
      const bodies = [String(await s.scrape()), String(await s.scrape()), String(await s.scrape())];
      const want = fromStatus();
      for (const body of bodies) expect(Object.fromEntries(backendSeries(body))).toEqual(Object.fromEntries(want));
      return want;
    };

    const first = await scrapes();
    expect(first.get(`xdplb_lb_backend_weight{vip="${vip}",backend="10.0.0.3:8000",state="active"}`)).toBe('1');
    lb(['--weight', '5', '--vip', vip, '--backend', '10.0.0.2']);
    expect((await scrapes()).get(`xdplb_lb_backend_weight{vip="${vip}",backend="10.0.0.2:8000",state="active"}`)).toBe('5');
    // Its connections are still in the table: removed, not gone.
    lb(['--backend-del', vip, '--backend', '10.0.0.3']);
    const removed = await scrapes();
    expect(removed.get(`xdplb_lb_backend_weight{vip="${vip}",backend="10.0.0.3:8000",state="removed"}`)).toBe('0');
    expect(removed.has(`xdplb_lb_backend_weight{vip="${vip}",backend="10.0.0.3:8000",state="active"}`)).toBe(false);
    expect(removed.get(`xdplb_lb_backend_connections_total{vip="${vip}",backend="10.0.0.3:8000"}`)).toBe(first.get(`xdplb_lb_backend_connections_total{vip="${vip}",backend="10.0.0.3:8000"}`));
    lb(['--backend-add', vip, '--backend', '10.0.0.4', '--weight', '2']);
    lb(['--vip-add', 'tcp:10.0.0.11:8000', '--backend', '10.0.0.2', '--nat-source', '10.0.0.10']);
    const added = await scrapes();
    expect(added.get(`xdplb_lb_backend_weight{vip="${vip}",backend="10.0.0.4:8000",state="active"}`)).toBe('2');
    expect(added.get('xdplb_lb_backend_weight{vip="tcp:10.0.0.11:8000",backend="10.0.0.2:8000",state="active"}')).toBe('1');
    expect(added.size).toBe(4 * 6);
  });
});
