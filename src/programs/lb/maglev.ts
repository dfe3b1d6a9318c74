// Weighted Maglev (Eisenbud et al., NSDI 2016): every backend walks its own
// permutation of the table and claims the first free entry on its turn, so
// each gets an even share and a change in the backend set moves few entries.
//
// Deterministic by construction, so that several balancers given the same
// config build the same table: the permutation of a backend comes from
// 32-bit FNV-1a of its identity ("address:port"), not from its position in
// the list or from a random source, and weights are whole numbers.
export const DEFAULT_TABLE_SIZE = 65537;
/** Entry value meaning "no backend": every backend of the VIP has weight 0. */
export const NO_BACKEND = 0xffffffff;

export interface MaglevBackend {
  /** What the table holds for this backend (its id in the backend map). */
  id: number;
  /** Stable identity the permutation is derived from, e.g. "10.0.0.2:8000". */
  key: string;
  weight: number;
}

/** 32-bit FNV-1a over the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Fill a table of `size` (a prime) entries. A backend of weight w gets w
 * turns for every `max weight` turns of the heaviest one (integer credit, no
 * floating point), so its share is proportional to its weight. Backends of
 * weight 0 take no entries; with none left, every entry is NO_BACKEND.
 */
export function maglevTable(backends: MaglevBackend[], size = DEFAULT_TABLE_SIZE): Uint32Array {
  if (!isPrime(size)) throw new Error(`Maglev table size ${size} is not a prime`);
  const table = new Uint32Array(size).fill(NO_BACKEND);
  // Sorted by identity: the order of the config list does not matter.
  const live = backends.filter((b) => b.weight > 0).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (!live.length) return table;
  const n = live.length;
  // Typed arrays throughout: the fill below makes about 750,000 probes for
  // a 65537 table, most of an apply's compute.
  const ids = Uint32Array.from(live, (b) => b.id);
  const weight = Int32Array.from(live, (b) => b.weight);
  // pos[i] is backend i's current entry: offset + j * skip (mod size), kept
  // by adding skip and wrapping rather than multiplying each time.
  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  const credit = new Int32Array(n);
  let maxWeight = 0;
  live.forEach((b, i) => {
    maxWeight = Math.max(maxWeight, b.weight);
    pos[i] = fnv1a32(`offset:${b.key}`) % size;
    skip[i] = (fnv1a32(`skip:${b.key}`) % (size - 1)) + 1;
  });
  // One byte per entry: probing it stays in cache, where the table (4 bytes
  // an entry) would not.
  const taken = new Uint8Array(size);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      credit[i] += weight[i];
      if (credit[i] < maxWeight) continue;
      credit[i] -= maxWeight;
      // The backend's next preferred entry that is still free; the walk
      // visits every entry once because size is prime.
      const s = skip[i];
      let c = pos[i];
      while (taken[c]) {
        c += s;
        if (c >= size) c -= size;
      }
      taken[c] = 1;
      table[c] = ids[i];
      c += s;
      pos[i] = c >= size ? c - size : c;
      if (++filled === size) return table;
    }
  }
}
