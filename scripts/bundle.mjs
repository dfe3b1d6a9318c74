// Bundle each command into one CommonJS file (one file to read, and V8 can
// cache its compiled code: see lib/launch.cjs). koffi stays outside: it
// carries a native module. The commands are xdp-root and one per subprogram
// of the registry (src/programs/index.ts); their launchers in bin/ are
// written here too.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';

// string-width (inside yargs and cliui) builds an Intl.Segmenter and a
// Unicode emoji RegExp when its module is evaluated: ~35 ms, more than the
// rest of a status call. Only help text and tables measure strings, so each
// copy is wrapped to be evaluated on its first call instead.
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === 'real') return undefined;
      const real = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'real' });
      return { path: real.path, namespace: 'lazy-string-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      contents:
        `let real; module.exports = (s, o) => { ` +
        `if (!real) { const m = require(${JSON.stringify(args.path)}); real = m.default ?? m; } return real(s, o); };`,
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

// Node's built-in modules outside its start-up snapshot (http, net, zlib,
// crypto...) cost milliseconds each to compile, and most commands never
// call them: a status call needs none. Each is bundled as a stand-in that
// requires the real module when one of its names is first read. The names
// are the module's own, listed here at build time; __esModule is asked by
// the bundle's interop when the stand-in is loaded, and is not one.
const LAZY_BUILTINS = ['crypto', 'fs/promises', 'http', 'net', 'os', 'zlib'];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|').replace('/', '\\/')})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === 'lazy-builtin'
        ? { path: args.path, external: true } // the stand-in's own require
        : { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' },
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
      const id = `node:${args.path}`;
      const names = Object.keys(createRequire(import.meta.url)(id));
      return {
        contents: `const names = ${JSON.stringify(names)};
let real;
const get = () => (real ??= require(${JSON.stringify(id)}));
module.exports = new Proxy({}, {
  get: (_, k) => (k === '__esModule' ? undefined : get()[k]),
  has: (_, k) => names.includes(k),
  ownKeys: () => [...names],
  getOwnPropertyDescriptor: (_, k) => (names.includes(k) ? { configurable: true, enumerable: true, get: () => get()[k] } : undefined),
});`,
        loader: 'js',
      };
    });
  },
};

// yargs' platform shim, changed where it costs every command at start-up:
// - it checks yargs' invariants with assert's strictEqual and
//   notStrictEqual, and node:assert takes ~8 ms to load (its error class
//   sets up stderr's colours): the checks are done here, and only a failure
//   loads it, to throw its own AssertionError;
// - it reads the terminal's width when loaded, which makes process.stdout
//   (a socket for a pipe: ~6 ms): read when help is laid out instead.
// The build fails if a text to change is not found.
const YARGS_SHIM_EDITS = [
  [
    "import { notStrictEqual, strictEqual } from 'assert'",
    "const fail = (name, a) => require('node:assert')[name](...a);\n" +
      "const strictEqual = (...a) => { if (!Object.is(a[0], a[1])) fail('strictEqual', a); };\n" +
      "const notStrictEqual = (...a) => { if (Object.is(a[0], a[1])) fail('notStrictEqual', a); };",
  ],
  [
    "stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null",
    "get stdColumns() { return typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null; }",
  ],
];
const yargsShim = {
  name: 'yargs-shim',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, async (args) => {
      let text = await readFile(args.path, 'utf8');
      for (const [from, to] of YARGS_SHIM_EDITS) {
        if (!text.includes(from)) throw new Error(`${args.path}: no longer has ${JSON.stringify(from)}`);
        text = text.replace(from, to);
      }
      return { contents: text, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

// jsonc-parser's modules do nothing when loaded but build tables; said so,
// the formatter's (~5 ms of whitespace strings at start-up), which nothing
// here uses, is left out of the bundle.
const jsoncPure = {
  name: 'jsonc-pure',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === 'jsonc' || !(args.path === 'jsonc-parser' || args.importer.includes('/node_modules/jsonc-parser/'))) return undefined;
      const real = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'jsonc' });
      return { ...real, sideEffects: false };
    });
  },
};

// koffi's native module, required by its file. koffi's own loader finds it
// for the platform and C library at run time (reading the node binary's
// ELF headers) in three more files compiled at every start (~7 ms), and
// resolving the package name goes through its "exports", which loads
// Node's ES module resolver. A build is for the platform it runs on (the
// package: glibc x86-64); dist/ and node_modules/ are siblings here and in
// the package. The loader's additions are deprecated aliases, unused here.
const KOFFI_NATIVE = `../node_modules/@koromix/koffi-${process.platform}-${process.arch}/${process.platform}_${process.arch}/koffi.node`;
const koffiNative = {
  name: 'koffi-native',
  setup(b) {
    b.onResolve({ filter: /^koffi$/ }, () => ({ path: 'koffi', namespace: 'koffi-native' }));
    b.onResolve({ filter: /\.node$/ }, (args) => ({ path: args.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'koffi-native' }, () => ({
      contents: `module.exports = require(${JSON.stringify(KOFFI_NATIVE)});`,
      loader: 'js',
    }));
  },
};

// A subprogram's entry is one line calling the shared one with its name.
const subprogramEntries = {
  name: 'subprogram-entries',
  setup(b) {
    b.onResolve({ filter: /^xdp-entry:/ }, (args) => ({ path: args.path.slice('xdp-entry:'.length), namespace: 'xdp-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'xdp-entry' }, (args) => ({
      contents: `import { main } from ${JSON.stringify(resolve('src/cli/xdp.ts'))}; main(${JSON.stringify(args.path)});`,
      resolveDir: resolve('src/cli'),
      loader: 'ts',
    }));
  },
};

export const OPTIONS = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  external: ['koffi'],
  // ESM builds first: jsonc-parser's UMD build requires its parts dynamically.
  mainFields: ['module', 'main'],
  // yargs is ESM and asks for import.meta.url; give it the bundle's own.
  define: { 'import.meta.url': '__xdplb_url' },
  banner: { js: "var __xdplb_url=require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyStringWidth, lazyBuiltins, yargsShim, jsoncPure, koffiNative, subprogramEntries],
  logLevel: 'warning',
};

/** The registry and the tools' tables, as the build sees them. */
export async function describe() {
  mkdirSync('build', { recursive: true });
  await build({ ...OPTIONS, minify: false, entryPoints: { describe: 'src/cli/describe.ts' }, outdir: 'build', outExtension: { '.js': '.cjs' } });
  return createRequire(import.meta.url)(resolve('build/describe.cjs'));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { PROGRAMS } = await describe();
  const commands = ['xdp-root', ...PROGRAMS.map((p) => `xdp-${p.name}`)];
  mkdirSync('dist', { recursive: true });
  for (const f of readdirSync('dist')) if (f.endsWith('.cache') || f.endsWith('.cjs')) rmSync(`dist/${f}`);
  await build({
    ...OPTIONS,
    entryPoints: Object.fromEntries(commands.map((c) => [c, c === 'xdp-root' ? 'src/cli/xdp-root.ts' : `xdp-entry:${c.slice(4)}`])),
    outdir: 'dist',
    outExtension: { '.js': '.cjs' },
  });
  // One launcher per command; launchers of commands that are gone go too.
  for (const f of readdirSync('bin')) if (f.startsWith('xdp-') && !commands.includes(f)) rmSync(`bin/${f}`);
  for (const c of commands) {
    writeFileSync(`bin/${c}`, `#!/usr/bin/env node\nrequire('../lib/launch.cjs')('${c}');\n`);
    chmodSync(`bin/${c}`, 0o755);
  }
  // Warm the code caches with a run through the start-up path; a status call
  // also compiles the binding and the formatting code.
  for (const c of commands) {
    execFileSync(process.execPath, [`bin/${c}`, '--status', '--json'], { stdio: 'ignore', env: { ...process.env, XDPLB_PIN_ROOT: '/nonexistent' } });
  }
}
