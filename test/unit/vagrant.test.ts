// The Vagrant lab cannot boot here; what can be checked is: the Ruby parses,
// the provisioning scripts parse, and the config the server writes is one
// the service accepts.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { ROOT_DIR } from '../helpers/cli.js';

describe('Vagrant lab', () => {
  it('Vagrantfile is valid Ruby', () => {
    expect(execFileSync('ruby', ['-c', `${ROOT_DIR}/Vagrantfile`], { encoding: 'utf8' })).toBe('Syntax OK\n');
  });

  it('provisioning scripts are valid bash', () => {
    for (const s of ['provision-server.sh', 'provision-client.sh']) {
      execFileSync('bash', ['-n', `${ROOT_DIR}/vagrant/${s}`]);
    }
  });

  it('the server writes a config the service accepts', () => {
    const script = readFileSync(`${ROOT_DIR}/vagrant/provision-server.sh`, 'utf8');
    const heredoc = /cat > \/etc\/xdplb\/xdplb\.json <<JSON\n([\s\S]*?)\nJSON\n/.exec(script)![1];
    const values: Record<string, string> = { dev: 'eth1', self: '192.168.56.10', vip: '192.168.56.100', backend1: '192.168.56.31', backend2: '192.168.56.32' };
    const text = heredoc.replace(/\$(\w+)/g, (_, v: string) => values[v]);
    const config = parseConfig(text, 'xdplb.json');
    expect(config.interfaces).toEqual(['eth1']);
    expect(config.sections.lb.enabled).toBe(true);
    expect(config.sections.lb.settings).toMatchObject({
      nat: { source_ipv4: '192.168.56.10' },
      vips: [{ address: '192.168.56.100', port: 8000, protocol: 'tcp', backends: [{ address: '192.168.56.31', port: 8000, weight: 1 }, { address: '192.168.56.32', port: 8000, weight: 1 }] }],
    });
  });
});
