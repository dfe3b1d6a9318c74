// Entry point of xdp-root (bundled to dist/xdp-root.cjs).
import { hideBin } from 'yargs/helpers';
import { COMMAND, main } from './root.js';
import { runCommand } from './main.js';

runCommand(COMMAND, () => main(hideBin(process.argv)));
