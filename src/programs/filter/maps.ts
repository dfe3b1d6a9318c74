// One interface's filter maps, opened from their pins (or handed over as fds
// by tests): configuration, drop lists, counters. Every change is a single
// map update the data path sees whole.
import { BpfError, UPDATE_ANY, UPDATE_EXIST, closeMaps, u32, type BpfMap } from '../../libbpf/index.js';
import { XdplbError } from '../../errors.js';
import { interfaceRecovery, openPinnedMaps } from '../../root/place.js';
import { programDir, type Iface } from '../../root/pins.js';
import { encodeConfig, decodeConfig, type FilterConfig } from './config.js';
import { FILTER, HINT4_BITS, HINT6_BITS, MAPS, hint6Bucket, PREFIX_LAYOUT, STATS, TAG_SIZE, type StatName } from './layout.js';
import { keyPrefix, prefixKey, type Prefix } from './prefix.js';

export type FilterStats = Record<StatName, bigint>;

export interface ListedPrefix extends Prefix {
  tag: string;
  loadTime: Date;
  hits: bigint;
}

export type FilterMapSet = Record<keyof typeof MAPS, BpfMap>;

export class FilterMaps {
  constructor(readonly maps: FilterMapSet) {}

  /** The pinned maps of the filter on an interface. */
  static open(iface: Iface): FilterMaps {
    return new FilterMaps(openPinnedMaps(
      programDir(iface, FILTER.name), MAPS, interfaceRecovery(FILTER, iface),
      `xdp-filter is not attached to ${iface.name}: run xdp-filter --attach --interface ${iface.name} first`,
    ));
  }

  close(): void {
    closeMaps(this.maps);
  }

  config(): FilterConfig {
    return decodeConfig(this.maps.config.lookup(0)!);
  }

  setConfig(cfg: FilterConfig): void {
    this.maps.config.update(0, encodeConfig(cfg));
  }

  stats(): FilterStats {
    const sums = this.maps.stats.sumPerCpu(0);
    return Object.fromEntries(STATS.map((s, i) => [s, sums[i]])) as FilterStats;
  }

  private trie(p: { family: 4 | 6 }): BpfMap {
    return p.family === 4 ? this.maps.drop4 : this.maps.drop6;
  }

  /** List a prefix (again): a new tag and load time, hits from zero. The
   *  trie first, then the hint, so a packet never finds the hint set and the
   *  trie without the prefix. */
  add(p: Prefix, tag: string, loadTime = new Date()): void {
    this.write(p, tag, loadTime, 0n, UPDATE_ANY);
    for (const b of hintSlots(p)) this.hint(p.family).update(b, u32(1));
  }

  private hint(family: 4 | 6): BpfMap {
    return family === 4 ? this.maps.hint4 : this.maps.hint6;
  }

  /** Add several; if one fails, put back what was there and rethrow. On
   *  success, returns the function that does the same later. */
  addAll(entries: Array<{ prefix: Prefix; tag: string }>, loadTime = new Date()): () => void {
    const key = (p: Prefix) => prefixKey(p).toString('hex');
    const before = new Map(this.list().map((l) => [key(l), l]));
    const added: Prefix[] = [];
    const undo = () => {
      for (const p of added.reverse()) {
        const old = before.get(key(p));
        if (old) this.write(old, old.tag, old.loadTime, old.hits, UPDATE_ANY);
        else this.remove([p]);
      }
    };
    try {
      for (const { prefix, tag } of entries) {
        added.push(prefix);
        this.add(prefix, tag, loadTime);
      }
    } catch (err) {
      undo();
      throw err;
    }
    return undo;
  }

  /** Refuse, naming the interface, when the prefixes not listed yet would
   *  overflow a list (once those `leaving` are removed). */
  checkRoom(prefixes: Prefix[], ifname: string, leaving: Prefix[] = []): void {
    const gone = new Set(leaving.map((p) => prefixKey(p).toString('hex')));
    for (const [family, trie] of [[4, this.maps.drop4], [6, this.maps.drop6]] as const) {
      const listed = new Set(trie.keys().map((k) => k.toString('hex')).filter((k) => !gone.has(k)));
      const fresh = new Set(prefixes.filter((p) => p.family === family).map((p) => prefixKey(p).toString('hex')));
      const total = listed.size + [...fresh].filter((k) => !listed.has(k)).length;
      const room = trie.maxEntries;
      if (total > room) {
        throw new XdplbError(`the IPv${family} drop list of ${ifname} would hold ${total} prefixes: it holds at most ${room}`);
      }
    }
  }

  private write(p: Prefix, tag: string, loadTime: Date, hits: bigint, flags: bigint): void {
    const value = Buffer.alloc(PREFIX_LAYOUT.size);
    value.writeBigUInt64LE(hits, PREFIX_LAYOUT.hits);
    value.writeBigUInt64LE(BigInt(loadTime.getTime()) * 1_000_000n, PREFIX_LAYOUT.load_time);
    value.write(tag, PREFIX_LAYOUT.tag, TAG_SIZE - 1, 'utf8');
    this.trie(p).update(prefixKey(p), value, flags);
  }

  /** List entries again as they were (tag, load time, hits): undoing a
   *  removal. */
  addListed(entries: ListedPrefix[]): void {
    for (const p of entries) {
      this.write(p, p.tag, p.loadTime, p.hits, UPDATE_ANY);
      for (const b of hintSlots(p)) this.hint(p.family).update(b, u32(1));
    }
  }

  /** Unlist prefixes; returns those that were listed. */
  remove(prefixes: Prefix[]): Prefix[] {
    const removed = prefixes.filter((p) => this.trie(p).delete(prefixKey(p)));
    for (const family of [4, 6] as const) this.refreshHint(family, removed.filter((p) => p.family === family).flatMap(hintSlots));
    return removed;
  }

  /** Clear the hint slots no listed prefix covers any more. Then look
   *  again and set back any that a concurrent `--drop` listed meanwhile: its
   *  trie update came before its hint update, so this second look sees it
   *  whenever the clear could have undone its hint. */
  private refreshHint(family: 4 | 6, slots: number[]): void {
    if (!slots.length) return;
    const covered = this.covered(family);
    const cleared = [...new Set(slots)].filter((b) => !covered[b]);
    for (const b of cleared) this.hint(family).update(b, u32(0));
    const now = this.covered(family);
    for (const b of cleared) if (now[b]) this.hint(family).update(b, u32(1));
  }

  private covered(family: 4 | 6): Uint8Array {
    const covered = new Uint8Array(1 << (family === 4 ? HINT4_BITS : HINT6_BITS));
    for (const key of this.trie({ family }).keys()) {
      for (const b of hintSlots(keyPrefix(family, key))) covered[b] = 1;
    }
    return covered;
  }

  list(): ListedPrefix[] {
    const out: ListedPrefix[] = [];
    for (const family of [4, 6] as const) {
      const trie = this.trie({ family });
      for (const key of trie.keys()) {
        // Looking up a stored key finds that very entry: its own prefix is
        // the longest that matches it.
        const value = trie.lookup(key);
        if (!value) continue; // removed meanwhile
        const tag = value.subarray(PREFIX_LAYOUT.tag, PREFIX_LAYOUT.tag + TAG_SIZE);
        out.push({
          ...keyPrefix(family, key),
          tag: tag.toString('utf8', 0, Math.max(0, tag.indexOf(0))),
          loadTime: new Date(Number(value.readBigUInt64LE(PREFIX_LAYOUT.load_time) / 1_000_000n)),
          hits: value.readBigUInt64LE(PREFIX_LAYOUT.hits),
        });
      }
    }
    return out.sort(comparePrefixes);
  }

  /** Empty both drop lists; how many prefixes were removed. */
  clearLists(): number {
    return this.remove(this.list()).length;
  }

  /** Zero the counters and every prefix's hits (tags and load times stay). */
  clearStats(): void {
    this.maps.stats.zero(0);
    for (const p of this.list()) {
      try {
        this.write(p, p.tag, p.loadTime, 0n, UPDATE_EXIST);
      } catch (err) {
        if (!(err instanceof BpfError && err.code === 'ENOENT')) throw err; // removed meanwhile
      }
    }
  }
}

/** The /16s an IPv4 prefix covers all or part of. */
/** The hint slots a prefix covers: its /16s for IPv4; for IPv6 the buckets
 *  of its /32s, or every bucket for a prefix shorter than /16 (too many /32s
 *  to walk, and they would fill every bucket anyway). */
function hintSlots(p: Prefix): number[] {
  if (p.family === 4) {
    const first = p.addr.readUInt16BE(0);
    const count = p.len >= HINT4_BITS ? 1 : 1 << (HINT4_BITS - p.len);
    return Array.from({ length: count }, (_, i) => first + i);
  }
  if (p.len < 16) return Array.from({ length: 1 << HINT6_BITS }, (_, i) => i);
  const first = p.addr.readUInt32BE(0);
  const count = p.len >= 32 ? 1 : 2 ** (32 - p.len);
  return [...new Set(Array.from({ length: count }, (_, i) => hint6Bucket((first + i) >>> 0)))];
}

/** IPv4 before IPv6, then by address, then shorter prefixes first. */
export function comparePrefixes(a: Prefix, b: Prefix): number {
  return a.family - b.family || Buffer.compare(a.addr, b.addr) || a.len - b.len;
}
