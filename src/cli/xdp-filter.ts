// Entry point of xdp-filter (bundled to dist/xdp-filter.cjs).
import { hideBin } from 'yargs/helpers';
import { COMMAND, main } from './filter.js';
import { runCommand } from './main.js';

runCommand(COMMAND, () => main(hideBin(process.argv)));
