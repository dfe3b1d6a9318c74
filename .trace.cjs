const t = () => performance.now().toFixed(1);
process.stderr.write(`start ${t()}\n`);
const Module = require('module');
const origLoad = Module._load;
Module._load = function (req, ...rest) { const s = performance.now(); const r = origLoad.call(this, req, ...rest); const d = performance.now() - s; if (d > 1) process.stderr.write(`  require ${req} ${d.toFixed(1)}ms\n`); return r; };
process.on('exit', () => process.stderr.write(`exit ${t()}\n`));
require('./lib/launch.cjs')('xdp-root');
process.stderr.write(`after-toplevel ${t()}\n`);
