// A tool's man page (roff, section 8), written from its table: the same
// synopsis, options and words as its --help.
import type { ToolSpec } from '../command.js';
import { VERSION } from '../version.js';
import { allOptions, usageLines } from './tool.js';

/** Text safe in roff: backslashes doubled, a leading dot or quote escaped. */
function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1').replace(/-/g, '\\-');
}

export function manPage(spec: ToolSpec, date: string, related: string[] = []): string {
  const lines: string[] = [
    `.TH ${spec.name.toUpperCase()} 8 "${date}" "xdplb ${VERSION}" "System Administration"`,
    '.SH NAME',
    `${spec.name} \\- ${roff(spec.summary)}`,
    '.SH SYNOPSIS',
  ];
  for (const a of spec.actions) for (const u of usageLines(spec, a)) lines.push('.nf', `.B ${roff(u)}`, '.fi');
  lines.push('.SH DESCRIPTION');
  for (const p of spec.description) lines.push('.PP', roff(p));
  lines.push('.SH ACTIONS', 'Exactly one per call; an option that does not go with the action is refused.');
  for (const a of spec.actions) {
    const head = a.kind === 'command' ? a.name : a.kind === 'value' ? `--${a.name} ${a.placeholder ?? 'VALUE'}` : `--${a.name}`;
    lines.push('.TP', `.B ${roff(head)}`, roff(a.describe));
  }
  lines.push('.SH OPTIONS');
  const actionNames = new Set(spec.actions.map((a) => a.name));
  for (const o of allOptions(spec)) {
    if (actionNames.has(o.name)) continue;
    const name = `${o.alias ? `-${o.alias}, ` : ''}--${o.name}${o.type === 'string' ? ` ${o.placeholder ?? 'VALUE'}` : ''}`;
    lines.push('.TP', `.B ${roff(name)}`, roff(o.describe));
  }
  lines.push('.TP', '.B \\-h, \\-\\-help', 'Print the usage and exit.', '.TP', '.B \\-\\-version', 'Print the version and the ABI of the state it pins.');
  for (const s of spec.sections ?? []) {
    lines.push(`.SH ${roff(s.title.toUpperCase())}`);
    for (const p of s.paragraphs) lines.push('.PP', roff(p));
  }
  lines.push(
    '.SH EXIT STATUS',
    '0 on success, 1 when an operation was refused or failed, 2 on bad usage or a configuration to fix. ' +
      'Errors are one line on standard error naming the value and what was expected; the kernel is left as it was.',
    '.SH FILES',
    '.TP', '.B /sys/fs/bpf/xdplb/', 'Pinned state, per network namespace and interface (directories 0700, pins 0600).',
    '.TP', '.B /etc/xdplb/xdplb.json', 'The service configuration read by \\fBrun\\fR.',
  );
  if (related.length) lines.push('.SH SEE ALSO', related.filter((r) => r !== spec.name).map((r) => `.BR ${roff(r)} (8)`).join(',\n'));
  return `${lines.join('\n')}\n`;
}
