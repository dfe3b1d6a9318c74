// The `run` verb of the subprogram commands: what it takes and refuses.
import { describe, expect, it } from 'vitest';
import { parser } from '../../src/cli/filter.js';
import { runRequest } from '../../src/cli/run.js';

const ACTIONS = ['attach', 'detach', 'status'];
const request = async (...args: string[]) => runRequest('xdp-filter', await parser(args).parse(), ACTIONS);

describe('runRequest', () => {
  it('gives the config file for run, and null for an ordinary action', async () => {
    expect(await request('run')).toBe('/etc/xdplb/xdplb.json');
    expect(await request('run', '--config', '/tmp/x.json')).toBe('/tmp/x.json');
    expect(await request('--status')).toBeNull();
  });

  it('refuses action flags with run, and --config without it', async () => {
    await expect(request('run', '--attach')).rejects.toThrow('run takes no --attach: it reads what to do from --config');
    await expect(request('run', 'again')).rejects.toThrow('Unknown argument: again (see xdp-filter --help)');
    await expect(request('--status', '--config', '/tmp/x.json')).rejects.toThrow('--config goes with run (see xdp-filter --help)');
    await expect(request('run', '--config', 'a', '--config', 'b')).rejects.toThrow('--config given more than once: expected one value');
  });
});
