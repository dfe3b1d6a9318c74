// What the service logs of an apply: each change named, nothing else.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/programs/lb/config.js';
import { describeChanges } from '../../src/programs/lb/changes.js';

const cfg = (vips: unknown[], nat: Record<string, unknown> = {}) =>
  validateConfig({ nat: { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10', ...nat }, encap_source_ipv4: '10.0.0.10', vips });
const A = { address: '10.0.0.10', port: 80, protocol: 'tcp' };
const B6 = { address: 'fd00::10', port: 443, protocol: 'tcp' };

describe('describeChanges', () => {
  it('says nothing of the same config', () => {
    const c = cfg([{ ...A, backends: [{ address: '10.0.0.2' }] }]);
    expect(describeChanges(c, c)).toEqual([]);
  });

  it('names VIPs and backends added, removed and changed, and settings', () => {
    const before = cfg([
      { ...A, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }] },
      { ...B6, backends: [{ address: 'fd00::2' }] },
    ]);
    const after = cfg([
      { ...A, table_size: 251, forwarding: 'ipip', backends: [{ address: '10.0.0.2', weight: 3 }, { address: '10.0.0.4' }] },
      { address: '10.0.0.11', port: 53, protocol: 'udp', backends: [{ address: '10.0.0.5' }, { address: '10.0.0.6' }] },
    ], { port_max: 30000 });
    expect(describeChanges(before, after)).toEqual([
      'nat.port_max 32767 -> 30000',
      'vip tcp:10.0.0.10:80 forwarding nat -> ipip',
      'vip tcp:10.0.0.10:80 table_size 65537 -> 251',
      'vip tcp:10.0.0.10:80 encap_source_ipv4 none -> 10.0.0.10',
      'vip tcp:10.0.0.10:80 backend 10.0.0.2:80 weight 1 -> 3',
      'vip tcp:10.0.0.10:80 backend 10.0.0.4:80 added',
      'vip tcp:10.0.0.10:80 backend 10.0.0.3:80 removed',
      'vip udp:10.0.0.11:53 added (2 backends, nat)',
      'vip tcp:[fd00::10]:443 removed',
    ]);
  });
});
