'use strict';
// Starts a bundled command (dist/<name>.cjs) from V8's code cache. Compiling
// the bundle is a large part of a short command's run time, and Node 20 has
// no module compile cache of its own. scripts/bundle.mjs writes the caches and
// removes stale ones; a cache V8 rejects is simply rewritten (or skipped).
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

module.exports = function launch(name) {
  const file = path.join(__dirname, '..', 'dist', `${name}.cjs`);
  const cacheFile = `${file}.cache`;
  const source = fs.readFileSync(file, 'utf8');
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  if (cachedData === undefined || script.cachedDataRejected) {
    // At exit, so the cache holds every function this run compiled.
    process.once('exit', () => {
      try {
        fs.writeFileSync(cacheFile, script.createCachedData());
      } catch {
        // Read-only install: run uncached.
      }
    });
  }
  const run = script.runInThisContext();
  run.call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
};
