// The example alerting rules (etc/prometheus/xdplb-alerts.yml), checked and
// run by promtool against series shaped as the service exports them: each
// alert fires on what it is for, and not on a healthy balancer.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ALL_FAMILIES } from '../../src/service/metrics-doc.js';
import { ROOT_DIR } from '../helpers/cli.js';

const RULES = join(ROOT_DIR, 'etc/prometheus/xdplb-alerts.yml');
const dir = mkdtempSync(join(tmpdir(), 'xdplb-alerts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function promtool(...args: string[]): { code: number; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const instance = 'lb1:9624';
const alert = (labels: Record<string, string>, summary: string, description: string) => ({ exp_labels: { instance, job: 'xdplb', ...labels }, exp_annotations: { summary, description } });

describe('the example alerts', () => {
  it('pass promtool check rules', () => {
    expect(promtool('check', 'rules', RULES)).toMatchObject({ code: 0 });
  });

  it('name only metrics the service exports', () => {
    const text = spawnSync('grep', ['-o', 'xdplb_[a-z_]*', RULES], { encoding: 'utf8' }).stdout;
    const exported = new Set(ALL_FAMILIES.map((f) => f.name));
    expect([...new Set(text.split('\n').filter(Boolean))].filter((n) => !exported.has(n))).toEqual([]);
  });

  it('fire on what they are for, and stay quiet on a healthy balancer (promtool test rules)', () => {
    const s = (series: string, values: string) => ({ series: series.replace(/\}$/, `${series.endsWith('{}') ? '' : ','}instance="${instance}",job="xdplb"}`), values });
    const slot = 'interface="eth0",slot="7",program="xdp_lb"';
    const tests = {
      rule_files: [RULES],
      evaluation_interval: '15s',
      tests: [{
        interval: '15s',
        input_series: [
          s(`xdplb_slot_packets_total{${slot},action="XDP_ABORTED"}`, '0 0 0 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3'),
          s(`xdplb_slot_packets_total{${slot},action="XDP_PASS"}`, '0+100x40'),
          s('xdplb_root_attached{interface="eth0",mode="native"}', '1x40'),
          s('xdplb_root_attached{interface="eth1"}', '1 1 0x38'),
          s('xdplb_scrape_collector_success{collector="lb"}', '1x4 0x36'),
          s('xdplb_scrape_collector_success{collector="root"}', '1x40'),
          s('xdplb_lb_nat_ports{}', '0+1000x26 27000x34'),
          s('xdplb_lb_nat_ports_max{}', '32768x60'),
          s('xdplb_sampler_lost_total{interface="eth0"}', '0x40'),
          s('xdplb_lb_vip_healthy_backends{vip="tcp:10.0.0.10:80"}', '2x40'),
          s('xdplb_lb_vip_healthy_backends{vip="tcp:10.0.0.11:80"}', '2 1 0x38'),
        ],
        alert_rule_test: [
          { eval_time: '30s', alertname: 'XdplbSlotAborting', exp_alerts: [] },
          { eval_time: '1m', alertname: 'XdplbSlotAborting', exp_alerts: [alert({ interface: 'eth0', slot: '7', program: 'xdp_lb', action: 'XDP_ABORTED', severity: 'critical' }, 'xdp_lb in slot 7 on lb1:9624 eth0 returned XDP_ABORTED', '3 packets aborted in 5 minutes; `xdp-sampler --capture` with verdict sampling shows them.')] },
          { eval_time: '1m', alertname: 'XdplbRootDetached', exp_alerts: [] },
          { eval_time: '2m', alertname: 'XdplbRootDetached', exp_alerts: [alert({ interface: 'eth1', severity: 'critical' }, 'no xdplb root on lb1:9624 eth1', 'Packets on this interface bypass the dispatcher: see `systemctl status xdplb-root`.')] },
          { eval_time: '4m', alertname: 'XdplbCollectorFailing', exp_alerts: [] },
          { eval_time: '7m', alertname: 'XdplbCollectorFailing', exp_alerts: [alert({ collector: 'lb', severity: 'warning' }, 'xdplb metrics collector lb failing on lb1:9624', 'The service logs why: journalctl -u xdplb-root.')] },
          // 27,000 of 32,768 ports (> 80 %) from 6m45s on: firing 5 minutes later.
          { eval_time: '11m', alertname: 'XdplbNatPortsNearlyFull', exp_alerts: [] },
          { eval_time: '12m', alertname: 'XdplbNatPortsNearlyFull', exp_alerts: [alert({ severity: 'warning' }, 'NAT table 82.4% full on lb1:9624', 'Widen nat.port_min..port_max, add NAT source addresses, or move VIPs to direct server return.')] },
          { eval_time: '10m', alertname: 'XdplbSamplesLost', exp_alerts: [] },
          // No healthy backend from 30s on: firing 30 seconds later.
          { eval_time: '45s', alertname: 'XdplbVipNoHealthyBackend', exp_alerts: [] },
          { eval_time: '1m', alertname: 'XdplbVipNoHealthyBackend', exp_alerts: [alert({ vip: 'tcp:10.0.0.11:80', severity: 'critical' }, 'VIP tcp:10.0.0.11:80 has no healthy backend on lb1:9624', '`xdp-lb --status` shows each backend\'s last check error; the service logs each one going down.')] },
        ],
      }],
    };
    const file = join(dir, 'tests.yml');
    writeFileSync(file, JSON.stringify(tests)); // YAML is a superset of JSON
    const r = promtool('test', 'rules', file);
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });
});
