// The version the commands were built from (package.json, inlined by the
// bundler), and the ABI of everything they pin and of the slot protocol:
// XDPLB_ABI_VERSION in bpf/include/xdplb/abi.h (the loader checks that every
// slot program carries this number, and a test that the root's does).
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
export const ABI_VERSION = 4;
