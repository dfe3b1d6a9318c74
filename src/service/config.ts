// The service's one config file (/etc/xdplb/xdplb.json), validated as a
// whole: every error names the file, the line and column, the key and what
// was expected. The subprograms' sections come from the registry; each
// program checks its own keys.
import { readFileSync } from 'node:fs';
import { getNodeValue, type Node } from 'jsonc-parser';
import { XdplbError } from '../errors.js';
import { JsonDoc } from '../json.js';
import { MODES, type Mode } from '../root/attach.js';
import { validateInterfaceName } from '../net/interface.js';
import { SLOTS } from '../root/pins.js';
import { SUBPROGRAMS } from '../programs/index.js';
import type { SectionReader } from '../programs/contract.js';
import { DEFAULT_LISTEN, parseListen, type Listen } from './listen.js';
import { DEFAULT_CONFIG } from './defaults.js';

export { DEFAULT_CONFIG };

/** Settings common to every subprogram section, and the subprogram's own
 *  (checked and normalised by its reader). */
export interface SectionConfig {
  enabled: boolean;
  slot: number;
  settings: unknown;
}

export interface ServiceConfig {
  interfaces: string[] | 'auto';
  mode: Mode;
  /** Replace a foreign XDP program on a chosen interface. */
  force: boolean;
  sections: Record<string, SectionConfig>;
  /** Where to serve Prometheus metrics (absent: not served), and how many
   *  per-prefix series a list may have at most (the top ones by hits). */
  metrics?: { listen: Listen; top: number };
}

/** A config that cannot be used: exit 2, so systemd does not restart into it. */
export class ConfigError extends XdplbError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'ConfigError';
  }
}

class Source {
  constructor(readonly doc: JsonDoc) {}

  fail(node: Node | undefined, path: string, message: string): never {
    const where = node ? this.doc.at(node.offset) : this.doc.file;
    throw new ConfigError(`${where}: ${path}: ${message}`);
  }
}

function describe(node: Node): string {
  if (node.type === 'string') return `"${node.value}"`;
  if (node.type === 'object' || node.type === 'array') return `an ${node.type}`;
  return String(node.value);
}

function members(src: Source, node: Node, path: string, allowed: readonly string[]): Map<string, Node> {
  if (node.type !== 'object') src.fail(node, path || '(top level)', `expected an object, got ${describe(node)}`);
  const out = new Map<string, Node>();
  for (const prop of node.children ?? []) {
    const [key, value] = prop.children as [Node, Node];
    const name = key.value as string;
    const where = path ? `${path}.${name}` : name;
    if (!allowed.includes(name)) src.fail(key, where, `unknown key: expected one of ${allowed.join(', ')}`);
    out.set(name, value);
  }
  return out;
}

function bool(src: Source, node: Node | undefined, path: string, fallback: boolean): boolean {
  if (!node) return fallback;
  if (node.type !== 'boolean') src.fail(node, path, `expected true or false, got ${describe(node)}`);
  return node.value as boolean;
}

function slot(src: Source, node: Node | undefined, path: string, fallback: number): number {
  if (!node) return fallback;
  if (node.type !== 'number' || !Number.isInteger(node.value) || node.value < 0 || node.value >= SLOTS) {
    src.fail(node, path, `expected a slot number from 0 to ${SLOTS - 1}, got ${describe(node)}`);
  }
  return node.value as number;
}

function interfaces(src: Source, node: Node | undefined): string[] | 'auto' {
  if (!node) return 'auto';
  if (node.type === 'string' && node.value === 'auto') return 'auto';
  if (node.type !== 'array' || !node.children?.length) {
    src.fail(node, 'interfaces', `expected "auto" or a non-empty list of interface names, got ${describe(node)}`);
  }
  const names = node.children.map((child, i) => {
    const where = `interfaces[${i}]`;
    if (child.type !== 'string') src.fail(child, where, `expected an interface name, got ${describe(child)}`);
    try {
      return validateInterfaceName(child.value as string);
    } catch (err) {
      return src.fail(child, where, (err as Error).message);
    }
  });
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) src.fail(node, 'interfaces', `"${dup}" is listed twice`);
  return names;
}

function sectionSettings(src: Source, name: string, node: Node | undefined, m: Map<string, Node>, reader: SectionReader<unknown>) {
  const own = Object.fromEntries([...m].filter(([k]) => k !== 'enabled' && k !== 'slot').map(([k, v]) => [k, getNodeValue(v)]));
  try {
    return reader.parse(own);
  } catch (err) {
    const message = (err as Error).message;
    const colon = message.indexOf(': ');
    const path = colon > 0 ? message.slice(0, colon) : '';
    const at = node && path ? src.doc.find(path, node) : node;
    return src.fail(at, path ? `${name}.${path}` : name, colon > 0 ? message.slice(colon + 2) : message);
  }
}


export function parseConfig(text: string, file = DEFAULT_CONFIG): ServiceConfig {
  const doc = JsonDoc.parse(text, file, (m) => new ConfigError(m));
  const src = new Source(doc);
  const top = members(src, doc.tree, '', ['interfaces', 'mode', 'force', 'metrics', ...SUBPROGRAMS.map((s) => s.name)]);
  const modeNode = top.get('mode');
  if (modeNode && !MODES.includes(modeNode.value as Mode)) {
    src.fail(modeNode, 'mode', `expected "native", "skb" or "auto", got ${describe(modeNode)}`);
  }
  const sections: Record<string, SectionConfig> = {};
  for (const sub of SUBPROGRAMS) {
    const node = top.get(sub.name);
    const m = node ? members(src, node, sub.name, ['enabled', 'slot', ...sub.section.keys]) : new Map<string, Node>();
    sections[sub.name] = {
      enabled: bool(src, m.get('enabled'), `${sub.name}.enabled`, false),
      slot: slot(src, m.get('slot'), `${sub.name}.slot`, sub.defaultSlot),
      settings: sectionSettings(src, sub.name, node, m, sub.section),
    };
  }
  const used = new Map<number, string>();
  for (const [name, s] of Object.entries(sections)) {
    if (!s.enabled) continue;
    const other = used.get(s.slot);
    if (other) src.fail(top.get(name), `${name}.slot`, `slot ${s.slot} is already taken by ${other}`);
    used.set(s.slot, name);
  }
  return {
    interfaces: interfaces(src, top.get('interfaces')),
    mode: (modeNode?.value as Mode | undefined) ?? 'auto',
    force: bool(src, top.get('force'), 'force', false),
    sections,
    ...metrics(src, top.get('metrics')),
  };
}

export const DEFAULT_TOP = 20;

function metrics(src: Source, node: Node | undefined): { metrics?: { listen: Listen; top: number } } {
  if (!node) return {};
  const m = members(src, node, 'metrics', ['listen', 'top_prefixes']);
  const listenNode = m.get('listen');
  let listen: Listen;
  try {
    listen = parseListen(listenNode ? getNodeValue(listenNode) : DEFAULT_LISTEN);
  } catch (err) {
    return src.fail(listenNode, 'metrics.listen', (err as Error).message.replace(/^metrics\.listen: /, ''));
  }
  const topNode = m.get('top_prefixes');
  if (topNode && (topNode.type !== 'number' || !Number.isInteger(topNode.value) || topNode.value < 0 || topNode.value > 10000)) {
    src.fail(topNode, 'metrics.top_prefixes', `expected a whole number from 0 to 10000, got ${describe(topNode)}`);
  }
  return { metrics: { listen, top: (topNode?.value as number | undefined) ?? DEFAULT_TOP } };
}

export function readConfig(file = DEFAULT_CONFIG): ServiceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code);
    throw new ConfigError(`cannot read config ${file}: ${why}`);
  }
  return parseConfig(text, file);
}
