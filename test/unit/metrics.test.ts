import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import {
  MetricsServer, VERSION, buildInfoCollector, formatListen, parseListen, rootFamilies, type Collector, type Sample,
} from '../../src/service/metrics.js';
import type { InterfaceStatus } from '../../src/root/status.js';
import type { ActionCounts } from '../../src/root/stats.js';
import pkg from '../../package.json' with { type: 'json' };

const F = '/etc/xdplb/xdplb.json';
const LOCAL = { host: '127.0.0.1', port: 0 };

let servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(collectors: Collector[], log?: (line: string) => void): Promise<MetricsServer> {
  const s = await MetricsServer.start({ listen: LOCAL, collectors, log });
  servers.push(s);
  return s;
}

const url = (s: MetricsServer, path: string) => `http://${formatListen(s.address())}${path}`;

/** The exposition without the collectors' own timings, which vary. */
const stable = (text: string) => text.replace(/^(xdplb_scrape_collector_duration_seconds\{.*\}) .*$/gm, '$1 T');

function message(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('nothing thrown');
}

const exactly = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

function counts(values: Partial<ActionCounts> = {}): ActionCounts {
  return { XDP_ABORTED: 0n, XDP_DROP: 0n, XDP_PASS: 0n, XDP_TX: 0n, XDP_REDIRECT: 0n, XDP_INVALID_ACTION: 0n, ...values };
}

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:9624', { host: '127.0.0.1', port: 9624 }],
    ['0.0.0.0:1', { host: '0.0.0.0', port: 1 }],
    ['[::1]:9624', { host: '::1', port: 9624 }],
    ['[::]:65535', { host: '::', port: 65535 }],
    ['[2001:db8::10]:80', { host: '2001:db8::10', port: 80 }],
  ])('reads %s', (text, listen) => {
    expect(parseListen(text)).toEqual(listen);
    expect(formatListen(listen)).toBe(text);
  });

  it.each([
    ['"localhost:9624"'], ['"127.0.0.1"'], ['"::1:9624"'], ['"[::1]"'], ['"127.0.0.1:0"'], ['"127.0.0.1:65536"'],
    ['"256.0.0.1:9624"'], ['"[127.0.0.1]:9624"'], ['"[::1]:-1"'], ['" 127.0.0.1:9624"'], ['""'], ['9624'], ['null'],
  ])('refuses %s in one line naming it', (shown) => {
    expect(message(() => parseListen(JSON.parse(shown)))).toBe(
      `metrics.listen: expected HOST:PORT such as 127.0.0.1:9624 or [::1]:9624, got ${shown}`,
    );
  });

  it('says which key it read', () => {
    expect(() => parseListen(['x'], 'listen')).toThrow(/^listen: expected HOST:PORT .*, got an array$/);
  });
});

describe('the config key "metrics"', () => {
  it('is off unless given, and listens on 127.0.0.1:9624 unless told', () => {
    expect(parseConfig('{}', F).metrics).toBeUndefined();
    expect(parseConfig('{"metrics": {}}', F).metrics).toEqual({ listen: { host: '127.0.0.1', port: 9624 }, top: 20 });
    expect(parseConfig('{"metrics": {"listen": "[::1]:9625", "top_prefixes": 5}}', F).metrics).toEqual({ listen: { host: '::1', port: 9625 }, top: 5 });
  });

  it('names the file, line and key of a mistake', () => {
    const fails = (text: string) => () => parseConfig(text, F);
    expect(fails('{\n "metrics": {\n  "listen": "localhost:9624"\n }\n}')).toThrow(
      `${F}:3:13: metrics.listen: expected HOST:PORT such as 127.0.0.1:9624 or [::1]:9624, got "localhost:9624"`,
    );
    expect(fails('{"metrics": {"port": 9624}}')).toThrow(`${F}:1:14: metrics.port: unknown key: expected one of listen, top_prefixes`);
    expect(fails('{"metrics": {"top_prefixes": -1}}')).toThrow(`${F}:1:30: metrics.top_prefixes: expected a whole number from 0 to 10000, got -1`);
    expect(fails('{"metrics": true}')).toThrow(`${F}:1:13: metrics: expected an object, got true`);
  });
});

describe('the exposition', () => {
  it('has the build info, version from package.json', async () => {
    expect(VERSION).toBe(pkg.version);
    const s = await serve([buildInfoCollector(3)]);
    expect(stable(String(await s.scrape()))).toBe([
      '# HELP xdplb_build_info The xdplb serving these metrics: its version and the ABI version of the state it pins.',
      '# TYPE xdplb_build_info gauge',
      `xdplb_build_info{version="${pkg.version}",abi="3"} 1`,
      '# HELP xdplb_scrape_collector_success Whether the collector read its metrics at this scrape (1) or failed (0).',
      '# TYPE xdplb_scrape_collector_success gauge',
      'xdplb_scrape_collector_success{collector="build_info"} 1',
      '# HELP xdplb_scrape_collector_duration_seconds How long the collector took to read its metrics at this scrape.',
      '# TYPE xdplb_scrape_collector_duration_seconds gauge',
      'xdplb_scrape_collector_duration_seconds{collector="build_info"} T',
      '',
    ].join('\n'));
  });

  it('has the root array: slots, the root row and final verdicts, per interface and action', async () => {
    const all: Record<string, InterfaceStatus> = {
      eth0: {
        root_loaded: true, mode: 'native', ifindex: 2, root_id: 40,
        subprograms: Array.from({ length: 8 }, (_, slot) => slot === 5
          ? { slot, prog_loaded: true, id: 41, name: 'xdp_drop_test', load_time: new Date(0),
              statistics: counts({ XDP_DROP: 5n, XDP_PASS: 2n }), bytes: counts({ XDP_DROP: 490n, XDP_PASS: 196n }) }
          : { slot, prog_loaded: false, statistics: counts(), bytes: counts() }),
        root: { statistics: counts({ XDP_PASS: 3n }), bytes: counts({ XDP_PASS: 294n }) },
        statistics: counts({ XDP_DROP: 5n, XDP_PASS: 5n }),
        bytes: counts({ XDP_DROP: 490n, XDP_PASS: 2n ** 64n - 1n }),
        slot_mask_mismatch: { skipped: [3], empty: [] },
      },
      eth1: { root_loaded: false },
    };
    const families = rootFamilies(all);
    expect(families.map((f) => [f.name, f.type])).toEqual([
      ['xdplb_root_attached', 'gauge'],
      ['xdplb_slot_mask_mismatch', 'gauge'],
      ['xdplb_slot_packets_total', 'counter'],
      ['xdplb_slot_bytes_total', 'counter'],
      ['xdplb_root_packets_total', 'counter'],
      ['xdplb_root_bytes_total', 'counter'],
      ['xdplb_verdict_packets_total', 'counter'],
      ['xdplb_verdict_bytes_total', 'counter'],
    ]);
    const s = await serve([{ name: 'root', families: () => families }]);
    const lines = String(await s.scrape()).split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('xdplb_scrape_'));
    const actions = (prefix: string, values: Record<string, string>) =>
      ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT', 'XDP_INVALID_ACTION']
        .map((a) => `${prefix}action="${a}"} ${values[a] ?? '0'}`);
    expect(lines).toEqual([
      'xdplb_root_attached{interface="eth0",mode="native"} 1',
      'xdplb_root_attached{interface="eth1"} 0',
      'xdplb_slot_mask_mismatch{interface="eth0"} 1',
      ...actions('xdplb_slot_packets_total{interface="eth0",slot="5",program="xdp_drop_test",', { XDP_DROP: '5', XDP_PASS: '2' }),
      ...actions('xdplb_slot_bytes_total{interface="eth0",slot="5",program="xdp_drop_test",', { XDP_DROP: '490', XDP_PASS: '196' }),
      ...actions('xdplb_root_packets_total{interface="eth0",', { XDP_PASS: '3' }),
      ...actions('xdplb_root_bytes_total{interface="eth0",', { XDP_PASS: '294' }),
      ...actions('xdplb_verdict_packets_total{interface="eth0",', { XDP_DROP: '5', XDP_PASS: '5' }),
      // 2^64-1 is written exactly (Prometheus stores the nearest float64).
      ...actions('xdplb_verdict_bytes_total{interface="eth0",', { XDP_DROP: '490', XDP_PASS: '18446744073709551615' }),
    ]);
  });

  it('writes counters exactly, past 2^53 too', async () => {
    const s = await serve([{
      name: 'big',
      families: () => [{ name: 'xdplb_big_total', help: 'h', type: 'counter', labels: ['n'], samples: [
        { labels: { n: 'a' }, value: 2n ** 53n }, { labels: { n: 'b' }, value: 2n ** 53n - 1n }, { labels: { n: 'c' }, value: 2n ** 53n + 1n },
      ] }],
    }]);
    expect(String(await s.scrape()).split('\n').filter((l) => l.startsWith('xdplb_big_total'))).toEqual([
      'xdplb_big_total{n="a"} 9007199254740992',
      'xdplb_big_total{n="b"} 9007199254740991',
      'xdplb_big_total{n="c"} 9007199254740993',
    ]);
  });

  it('writes numbers as JavaScript prints them, digit by digit where they are safe integers', async () => {
    const values = [0, 7, 10, 999_999_999, 1e9, 1_000_000_007, 2 ** 32 + 5, 123_456_789_012_345, 2 ** 53 - 1, -(2 ** 53 - 1), -42, 2 ** 53, 1e21, 0.25, -1.5, NaN, Infinity, -Infinity];
    const s = await serve([{
      name: 'numbers',
      families: () => [{ name: 'xdplb_numbers', help: 'h', type: 'gauge', labels: ['i'], samples: values.map((value, i) => ({ labels: { i: String(i) }, value })) }],
    }]);
    const shown = String(await s.scrape()).split('\n').filter((l) => l.startsWith('xdplb_numbers{')).map((l) => l.split(' ')[1]);
    expect(shown).toEqual([
      '0', '7', '10', '999999999', '1000000000', '1000000007', '4294967301', '123456789012345', '9007199254740991', '-9007199254740991', '-42',
      '9007199254740992', '1e+21', '0.25', '-1.5', 'NaN', '+Inf', '-Inf',
    ]);
  });

  it('writes a samples array given again with its values of the moment, and a new array with its own labels', async () => {
    const kept: Sample[] = [{ labels: { n: 'a' }, value: 1 }, { labels: { n: 'b' }, value: 2n ** 60n }, { labels: { n: 'huge' }, value: 7n ** 400n }];
    let samples = kept;
    const s = await serve([{ name: 'kept', families: () => [{ name: 'xdplb_kept_total', help: 'h', type: 'counter', labels: ['n'], samples }] }]);
    const lines = async () => String(await s.scrape()).split('\n').filter((l) => l.startsWith('xdplb_kept_total'));
    for (let i = 0; i < 4; i++) {
      kept[0].value = i * 1e10;
      expect(await lines()).toEqual([`xdplb_kept_total{n="a"} ${i * 1e10}`, 'xdplb_kept_total{n="b"} 1152921504606846976', `xdplb_kept_total{n="huge"} ${7n ** 400n}`]);
    }
    samples = [{ labels: { n: 'c' }, value: 3 }];
    expect(await lines()).toEqual(['xdplb_kept_total{n="c"} 3']);
    samples = kept;
    expect(await lines()).toEqual(['xdplb_kept_total{n="a"} 30000000000', 'xdplb_kept_total{n="b"} 1152921504606846976', `xdplb_kept_total{n="huge"} ${7n ** 400n}`]);
  });

  it('leaves out a failing collector and says so, keeping the others', async () => {
    const logged: string[] = [];
    let calls = 0;
    const flaky: Collector = {
      name: 'flaky',
      families: () => {
        calls++;
        if (calls === 1) throw new Error('map lookup failed');
        return [{ name: 'xdplb_flaky_total', help: 'h', type: 'counter', labels: [], samples: [{ value: 7n }] }];
      },
    };
    const s = await serve([flaky, buildInfoCollector(1)], (l) => logged.push(l));
    const first = String(await s.scrape());
    expect(first).toContain('xdplb_scrape_collector_success{collector="flaky"} 0\n');
    expect(first).toContain('xdplb_scrape_collector_success{collector="build_info"} 1\n');
    expect(first).not.toContain('xdplb_flaky_total');
    expect(first).toContain('xdplb_build_info{');
    expect(logged).toEqual(['metrics: collector flaky failed: map lookup failed']);
    // Nothing is kept between scrapes: the next one asks again.
    const second = String(await s.scrape());
    expect(second).toContain('xdplb_scrape_collector_success{collector="flaky"} 1\n');
    expect(second).toContain('\nxdplb_flaky_total 7\n');
  });

  it('refuses a collector that exports a name already taken or a bad name', async () => {
    const logged: string[] = [];
    const again: Collector = { name: 'again', families: () => buildInfoCollector(1).families() };
    const bad: Collector = { name: 'bad', families: () => [{ name: 'xdplb-bad', help: 'h', type: 'gauge', labels: [], samples: [{ value: 1 }] }] };
    const s = await serve([buildInfoCollector(1), again, bad], (l) => logged.push(l));
    const text = String(await s.scrape());
    expect(text.match(/^xdplb_build_info\{/gm)).toHaveLength(1);
    expect(text).toContain('xdplb_scrape_collector_success{collector="again"} 0\n');
    expect(text).toContain('xdplb_scrape_collector_success{collector="bad"} 0\n');
    expect(logged).toEqual([
      'metrics: collector again failed: metric xdplb_build_info is exported twice',
      'metrics: collector bad failed: invalid metric name "xdplb-bad"',
    ]);
  });

  it('escapes label values and help text as the format wants, and refuses bad label names', async () => {
    const s = await serve([
      { name: 'odd', families: () => [{ name: 'xdplb_odd', help: 'a \\ b\nc', type: 'gauge', labels: ['tag'], samples: [{ labels: { tag: 'say "hi"\\\n' }, value: 0.5 }, { labels: { tag: 'inf' }, value: Infinity }] }] },
      { name: 'badlabel', families: () => [{ name: 'xdplb_badlabel', help: 'h', type: 'gauge', labels: ['__name__'], samples: [{ labels: { __name__: 'x' }, value: 1 }] }] },
      { name: 'undeclared', families: () => [{ name: 'xdplb_undeclared', help: 'h', type: 'gauge', labels: [], samples: [{ labels: { extra: 'x' }, value: 1 }] }] },
    ]);
    const text = String(await s.scrape());
    expect(text.split('\n').filter((l) => l.includes('xdplb_odd'))).toEqual([
      '# HELP xdplb_odd a \\\\ b\\nc',
      '# TYPE xdplb_odd gauge',
      'xdplb_odd{tag="say \\"hi\\"\\\\\\n"} 0.5',
      'xdplb_odd{tag="inf"} +Inf',
    ]);
    expect(text).toContain('xdplb_scrape_collector_success{collector="badlabel"} 0\n');
    expect(text).not.toContain('xdplb_badlabel{');
    expect(text).toContain('xdplb_scrape_collector_success{collector="undeclared"} 0\n');
  });

  it('leaves out a family without samples', async () => {
    const s = await serve([{ name: 'none', families: () => [{ name: 'xdplb_none_total', help: 'h', type: 'counter', labels: [], samples: [] }] }]);
    expect(String(await s.scrape())).not.toContain('xdplb_none_total');
  });
});

describe('HTTP', () => {
  it('serves GET /metrics as Prometheus text', async () => {
    const s = await serve([buildInfoCollector(2)]);
    const r = await fetch(url(s, '/metrics'));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await r.text()).toContain(`\nxdplb_build_info{version="${pkg.version}",abi="2"} 1\n`);
    expect((await fetch(url(s, '/metrics?x=1'))).status).toBe(200);
  });

  it('answers HEAD /metrics with the headers only', async () => {
    const s = await serve([buildInfoCollector(2)]);
    const r = await fetch(url(s, '/metrics'), { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(Number(r.headers.get('content-length'))).toBeGreaterThan(300);
    expect(await r.text()).toBe('');
  });

  it.each(['/', '/metric', '/metrics/', '/favicon.ico', '/api/v1/query'])('answers 404 for %s', async (path) => {
    const s = await serve([buildInfoCollector(2)]);
    const r = await fetch(url(s, path));
    expect(r.status).toBe(404);
    expect(await r.text()).toBe('Not found: the metrics are at /metrics\n');
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('answers 405 for %s /metrics, and reads nothing', async (method) => {
    let calls = 0;
    const s = await serve([{ name: 'count', families: () => (calls++, []) }]);
    const r = await fetch(url(s, '/metrics'), { method, body: method === 'POST' || method === 'PUT' ? 'x=1' : undefined });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
    expect(await r.text()).toBe('Method not allowed: GET or HEAD\n');
    expect(calls).toBe(0);
  });

  it('listens on IPv6', async () => {
    const s = await MetricsServer.start({ listen: { host: '::1', port: 0 }, collectors: [buildInfoCollector(2)] });
    servers.push(s);
    expect(s.address().host).toBe('::1');
    expect(url(s, '/metrics')).toMatch(/^http:\/\/\[::1\]:\d+\/metrics$/);
    expect((await fetch(url(s, '/metrics'))).status).toBe(200);
  });

  it('fails in one line on an address in use or not of this host', async () => {
    const taken = createServer();
    await new Promise<void>((res) => taken.listen(0, '127.0.0.1', () => res()));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(MetricsServer.start({ listen: { host: '127.0.0.1', port }, collectors: [] })).rejects.toThrow(
        exactly(`cannot serve metrics on 127.0.0.1:${port}: the address is already in use`),
      );
    } finally {
      taken.close();
    }
    // 192.0.2.0/24 is for documentation: no host has it.
    await expect(MetricsServer.start({ listen: { host: '192.0.2.1', port: 9624 }, collectors: [] })).rejects.toThrow(
      exactly('cannot serve metrics on 192.0.2.1:9624: no interface of this host has that address'),
    );
  });
});

describe('the README\'s list of metrics', () => {
  it('is the one the code declares (make docs rewrites it)', async () => {
    const { readFileSync } = await import('node:fs');
    const { withMetricsTable } = await import('../../src/service/metrics-doc.js');
    const { ROOT_DIR } = await import('../helpers/cli.js');
    const readme = readFileSync(`${ROOT_DIR}/README.md`, 'utf8');
    expect(withMetricsTable(readme), 'README.md is out of date: run make docs').toBe(readme);
  });
});
