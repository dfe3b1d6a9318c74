// Entry point of a subprogram's command: scripts/bundle.mjs makes one bundle
// per subprogram of the registry (dist/xdp-<name>.cjs), each calling this
// with its name.
import { hideBin } from 'yargs/helpers';
import { subprogram } from '../programs/index.js';
import { runCommand } from './main.js';
import { subprogramTool } from './subprogram.js';
import { runTool } from './tool.js';

export function main(name: string): void {
  runCommand(`xdp-${name}`, () => runTool(subprogramTool(subprogram(name)), hideBin(process.argv)));
}
