// The version the commands were built from (package.json, inlined by the
// bundler) and the ABI of everything they pin.
import pkg from '../package.json' with { type: 'json' };
import { ABI_VERSION } from './root/abi.js';

export const VERSION: string = pkg.version;
export { ABI_VERSION };
