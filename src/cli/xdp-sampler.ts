// Entry point of xdp-sampler (bundled to dist/xdp-sampler.cjs).
import { hideBin } from 'yargs/helpers';
import { COMMAND, main } from './sampler.js';
import { runCommand } from './main.js';

runCommand(COMMAND, () => main(hideBin(process.argv)));
