// Bundle each command into one CommonJS file (one file to read, and V8 can
// cache its compiled code: see lib/launch.cjs). koffi stays outside: it
// carries a native module.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

// One command per entry file: src/cli/xdp-<name>.ts -> dist/xdp-<name>.cjs,
// started by bin/xdp-<name>.
const commands = readdirSync('src/cli').filter((f) => /^xdp-[a-z]+\.ts$/.test(f)).map((f) => f.slice(0, -3));

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

mkdirSync('dist', { recursive: true });
for (const f of readdirSync('dist')) if (f.endsWith('.cache')) rmSync(`dist/${f}`);
await build({
  entryPoints: Object.fromEntries(commands.map((c) => [c, `src/cli/${c}.ts`])),
  outdir: 'dist',
  outExtension: { '.js': '.cjs' },
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
  plugins: [lazyStringWidth],
  logLevel: 'warning',
});
// Warm the code caches with a run through the start-up path; a status call
// also compiles the binding and the formatting code.
for (const c of commands) {
  execFileSync(process.execPath, [`bin/${c}`, '--status', '--json'], { stdio: 'ignore', env: { ...process.env, XDPLB_PIN_ROOT: '/nonexistent' } });
}
