// What a restarted `xdp-lb run` takes over from the kernel before its first
// check: a checked backend the kernel holds at weight 0 against a config
// that gives it more starts down (so the start moves nothing), unless the
// state the last service published says health had not drained it.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/programs/lb/config.js';
import { carriedOver } from '../../src/programs/lb/service.js';
import type { LbRuntime } from '../../src/programs/lb/runtime.js';

const health = { interval_ms: 1000, timeout_ms: 500 };
const config = validateConfig({
  nat: { source_ipv4: '10.0.0.10', source_ipv6: 'fd00::10' },
  vips: [
    { address: '10.0.0.10', port: 80, health, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3' }, { address: '10.0.0.4', weight: 0 }, { address: '10.0.0.5', health: false }] },
    { address: 'fd00::10', port: 80, health, backends: [{ address: 'fd00::2' }, { address: 'fd00::3' }] },
    { address: '10.0.0.11', port: 80, health, backends: [{ address: '10.0.0.2' }] },
  ],
});
/** The kernel: 10.0.0.3, 10.0.0.4, 10.0.0.5 and fd00::3 at 0; 10.0.0.11 not there yet. */
const held = validateConfig({
  nat: config.nat,
  vips: [
    { address: '10.0.0.10', port: 80, backends: [{ address: '10.0.0.2' }, { address: '10.0.0.3', weight: 0 }, { address: '10.0.0.4', weight: 0 }, { address: '10.0.0.5', weight: 0 }] },
    { address: 'fd00::10', port: 80, backends: [{ address: 'fd00::2' }, { address: 'fd00::3', weight: 0 }] },
  ],
});

describe('a restarted service', () => {
  it('carries over as down exactly the checked backends health drained', () => {
    const now = Date.now();
    const seeds = carriedOver(held, config, null);
    expect([...seeds.keys()]).toEqual(['tcp:10.0.0.10:80 10.0.0.3:80', 'tcp:[fd00::10]:80 [fd00::3]:80']);
    for (const s of seeds.values()) {
      expect(s).toMatchObject({ health: 'down', last_error: 'drained in the kernel when the service started' });
      expect(Math.abs(s.since.getTime() - now)).toBeLessThan(1000);
    }
  });

  it('takes since and the reason from what the last service published, and leaves an operator\'s 0 unchecked', () => {
    const previous: LbRuntime = {
      pid: 1, start_ticks: '1', started: '', updated: '', attached: true, bgp: null,
      vips: {
        'tcp:10.0.0.10:80': {
          healthy: 1, announced: null, announcement: '',
          backends: { '10.0.0.3:80': { health: 'down', since: '2026-01-02T03:04:05.000Z', last_error: 'connect ECONNREFUSED' } },
        },
        'tcp:[fd00::10]:80': {
          healthy: 1, announced: null, announcement: '',
          backends: { '[fd00::3]:80': { health: 'up', since: '2026-01-02T03:04:05.000Z', last_error: null } },
        },
      },
    };
    expect(carriedOver(held, config, previous)).toEqual(new Map([
      ['tcp:10.0.0.10:80 10.0.0.3:80', { health: 'down', since: new Date('2026-01-02T03:04:05.000Z'), last_error: 'connect ECONNREFUSED' }],
    ]));
  });
});
