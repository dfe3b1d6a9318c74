// The filter's section of the service config (/etc/xdplb/xdplb.json):
// { "frags_drop": true, "ptb_max_pps": 20,
//   "drop": ["198.51.100.0/24", { "prefix": "2001:db8::/32", "tag": "scanner" }] }
import type { SectionReader } from '../contract.js';
import { parseTag, type FilterConfig } from './config.js';
import { formatPrefix, parsePrefix, type Prefix } from './prefix.js';

export interface FilterSettings extends FilterConfig {
  drop: Array<{ prefix: Prefix; tag: string }>;
}

const shown = (v: unknown) => JSON.stringify(v) ?? String(v);

function entry(v: unknown, path: string): { prefix: Prefix; tag: string } {
  const obj = typeof v === 'string' ? { prefix: v } : v;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new Error(`${path}: expected a prefix like "192.0.2.0/24" or { "prefix": ..., "tag": ... }, got ${shown(v)}`);
  }
  const o = obj as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => k !== 'prefix' && k !== 'tag');
  if (extra) throw new Error(`${path}.${extra}: unknown key: expected prefix or tag`);
  const where = typeof v === 'string' ? path : `${path}.prefix`;
  if (typeof o.prefix !== 'string') throw new Error(`${where}: expected a prefix like "192.0.2.0/24", got ${shown(o.prefix)}`);
  let prefix: Prefix;
  try {
    prefix = parsePrefix(o.prefix);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  if (o.tag !== undefined && typeof o.tag !== 'string') throw new Error(`${path}.tag: expected text, got ${shown(o.tag)}`);
  try {
    return { prefix, tag: parseTag((o.tag as string | undefined) ?? '') };
  } catch (err) {
    throw new Error(`${path}.tag: ${(err as Error).message}`);
  }
}

export const FILTER_SETTINGS: SectionReader<FilterSettings> = {
  keys: ['frags_drop', 'ptb_max_pps', 'drop'],
  parse(v): FilterSettings {
    if (v.frags_drop !== undefined && typeof v.frags_drop !== 'boolean') {
      throw new Error(`frags_drop: expected true or false, got ${shown(v.frags_drop)}`);
    }
    const pps = v.ptb_max_pps ?? 0;
    if (typeof pps !== 'number' || !Number.isInteger(pps) || pps < 0 || pps > 0xffffffff) {
      throw new Error(`ptb_max_pps: expected a whole number from 0 to 4294967295 (0 sends no replies), got ${shown(pps)}`);
    }
    const list = v.drop ?? [];
    if (!Array.isArray(list)) throw new Error(`drop: expected a list of prefixes, got ${shown(list)}`);
    const drop = list.map((e, i) => entry(e, `drop[${i}]`));
    const seen = new Map<string, number>();
    drop.forEach((d, i) => {
      const key = formatPrefix(d.prefix);
      if (seen.has(key)) throw new Error(`drop[${i}]: ${key} is listed twice (also drop[${seen.get(key)}])`);
      seen.set(key, i);
    });
    return { frags_drop: (v.frags_drop as boolean | undefined) ?? false, ptb_max_pps: pps, drop };
  },
};
