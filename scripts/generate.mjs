// What the build makes from the registry and the tools' tables (see
// src/cli/describe.ts): a man page per command, a unit per subprogram (from
// systemd/xdplb-subprogram.service.in), and a bash completion per command.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe } from './bundle.mjs';

const { TOOLS, PROGRAMS, manPage, withMetricsTable } = await describe();

// `make docs`: README.md's list of metrics, made from the code.
if (process.argv[2] === 'docs') {
  writeFileSync('README.md', withMetricsTable(readFileSync('README.md', 'utf8')));
  process.exit(0);
}
const commands = TOOLS.map((t) => t.name);

// SOURCE_DATE_EPOCH keeps package builds reproducible.
const epoch = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.now();
const date = new Date(epoch).toISOString().slice(0, 10);
mkdirSync('build/man', { recursive: true });
for (const t of TOOLS) writeFileSync(`build/man/${t.name}.8`, manPage(t, date, commands));

mkdirSync('build/systemd', { recursive: true });
const template = readFileSync('systemd/xdplb-subprogram.service.in', 'utf8');
for (const p of PROGRAMS) {
  // @UNIT@ and @SERVICE@ stand on lines of their own: the program's extra
  // lines there, or nothing.
  const extra = (lines) => (lines?.length ? `${lines.join('\n')}\n` : '');
  const unit = template.replace(/^# The template.*\n(#.*\n)*/m, '').replaceAll('@NAME@', p.name).replaceAll('@SUMMARY@', p.summary)
    .replace('@UNIT@\n', extra(p.unit?.unit)).replace('@SERVICE@\n', extra(p.unit?.service));
  writeFileSync(`build/systemd/xdplb-${p.name}.service`, unit);
}

// yargs writes the completion script for a command; the package installs
// one per command.
mkdirSync('build/completion', { recursive: true });
for (const c of commands) {
  const script = execFileSync(process.execPath, [`bin/${c}`, 'completion'], { encoding: 'utf8', env: { ...process.env, XDPLB_PIN_ROOT: '/nonexistent' } });
  writeFileSync(`build/completion/${c}`, script);
}
