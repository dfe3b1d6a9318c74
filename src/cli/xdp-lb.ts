// Entry point of xdp-lb (bundled to dist/xdp-lb.cjs).
import { hideBin } from 'yargs/helpers';
import { COMMAND, main } from './lb.js';
import { runCommand } from './main.js';

runCommand(COMMAND, () => main(hideBin(process.argv)));
