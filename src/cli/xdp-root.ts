// Entry point of xdp-root (bundled to dist/xdp-root.cjs).
import { hideBin } from 'yargs/helpers';
import { COMMAND, ROOT_TOOL } from './root.js';
import { runCommand } from './main.js';
import { runTool } from './tool.js';

runCommand(COMMAND, () => runTool(ROOT_TOOL, hideBin(process.argv)));
