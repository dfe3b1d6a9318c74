// A BPF map behind a file descriptor that knows its own key and value sizes:
// lookups, updates and deletes, per-CPU sums, key walks, batch operations
// and memory mappings. Keys are Buffers, or numbers for the u32 keys of
// arrays (most of ours).
import { c, address, errno, view } from './ffi.js';
import { BpfError, check } from './errors.js';
import { closeFd, dupFd, objInfo, openPinned, pinObject } from './fd.js';

export const MAP_TYPE = {
  HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERCPU_HASH: 5, PERCPU_ARRAY: 6, LRU_HASH: 9, LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11, ARRAY_OF_MAPS: 12, RINGBUF: 27,
} as const;
const PERCPU_TYPES: ReadonlySet<number> = new Set([MAP_TYPE.PERCPU_HASH, MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.LRU_PERCPU_HASH]);

/** BPF_F_* map flags as map_info reports them. */
export const MAP_F = { NO_PREALLOC: 1, RDONLY_PROG: 1 << 7, MMAPABLE: 1 << 10, INNER_MAP: 1 << 12 } as const;

export const UPDATE_ANY = 0n;
export const UPDATE_NOEXIST = 1n;
export const UPDATE_EXIST = 2n;

export interface MapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const info = objInfo(fd, 88, 'map');
  const name = info.subarray(24, 40);
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    name: name.subarray(0, Math.max(0, name.indexOf(0)) || 16).toString('utf8'),
  };
}

let cpuCount = 0;
export function possibleCpus(): number {
  if (!cpuCount) cpuCount = check('libbpf_num_possible_cpus', c.libbpf_num_possible_cpus(), 'cannot count CPUs');
  return cpuCount;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

const ENOENT = 2;
const ENOSPC = 28;
/** Errors meaning "no batch operations for this map type or kernel". */
const NO_BATCH = new Set([22 /* EINVAL */, 95 /* EOPNOTSUPP */, 524 /* ENOTSUPP */]);
let batchMissing = false;

const PAGE = 4096;
const PROT_READ = 1;
const PROT_READ_WRITE = 3;
const MAP_SHARED = 1;

export class BpfMap {
  readonly id: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly name: string;
  private open = true;

  /** Takes ownership of `fd`: close() closes it. */
  constructor(readonly fd: number) {
    const info = mapInfo(fd);
    this.id = info.id;
    this.type = info.type;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.name = info.name;
  }

  /** The map pinned at `path`; null when nothing is pinned there. */
  static openPinned(path: string): BpfMap | null {
    const fd = openPinned(path);
    return fd === null ? null : new BpfMap(fd);
  }

  /** A map by id (e.g. the inner map a map-in-map holds); null when gone. */
  static byId(id: number): BpfMap | null {
    const fd = c.bpf_map_get_fd_by_id(id);
    if (fd === -ENOENT) return null;
    return new BpfMap(check('bpf_map_get_fd_by_id', fd, `cannot open map id ${id}`));
  }

  /** A second handle on a map someone else owns (e.g. an object's). */
  static dup(fd: number): BpfMap {
    return new BpfMap(dupFd(fd));
  }

  static create(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags = 0): BpfMap {
    const opts = Buffer.alloc(48); // struct bpf_map_create_opts
    opts.writeBigUInt64LE(48n, 0);
    opts.writeUInt32LE(flags, 28);
    const fd = c.bpf_map_create(type, name, keySize, valueSize, maxEntries, opts);
    return new BpfMap(check('bpf_map_create', fd, `cannot create map ${name} (${maxEntries} entries)`));
  }

  get perCpu(): boolean {
    return PERCPU_TYPES.has(this.type);
  }

  /** One value as lookup hands it back: per-CPU maps give one value per
   *  possible CPU, each rounded up to 8 bytes. */
  private get lookupSize(): number {
    return this.perCpu ? Math.ceil(this.valueSize / 8) * 8 * possibleCpus() : this.valueSize;
  }

  private key(k: Buffer | number): Buffer {
    return typeof k === 'number' ? u32(k) : k;
  }

  /** The value at `key`, null when there is none (per-CPU maps: every
   *  CPU's, packed; see lookupPerCpu). */
  lookup(key: Buffer | number): Buffer | null {
    const value = Buffer.alloc(this.lookupSize);
    const r = c.bpf_map_lookup_elem(this.fd, this.key(key), value);
    if (r === -ENOENT) return null;
    check('bpf_map_lookup_elem', r, `cannot read map ${this.name}`);
    return value;
  }

  /** Each possible CPU's value of a per-CPU map. */
  lookupPerCpu(key: Buffer | number): Buffer[] | null {
    const all = this.lookup(key);
    if (!all) return null;
    const stride = Math.ceil(this.valueSize / 8) * 8;
    return Array.from({ length: possibleCpus() }, (_, i) => all.subarray(i * stride, i * stride + this.valueSize));
  }

  /** A per-CPU value of u64 counters summed over CPUs, one bigint per
   *  64-bit word of the value (all zero when the key has no value). */
  sumPerCpu(key: Buffer | number): bigint[] {
    const words = Math.floor(this.valueSize / 8);
    const sum: bigint[] = Array(words).fill(0n);
    for (const cpu of this.lookupPerCpu(key) ?? []) {
      for (let i = 0; i < words; i++) sum[i] += cpu.readBigUInt64LE(i * 8);
    }
    return sum;
  }

  /** Write a value (for a per-CPU map: one value for every CPU, packed as
   *  lookup returns them). */
  update(key: Buffer | number, value: Buffer, flags = UPDATE_ANY): void {
    check('bpf_map_update_elem', c.bpf_map_update_elem(this.fd, this.key(key), value, flags), `cannot update map ${this.name}`);
  }

  /** Zero a per-CPU value on every CPU (or a plain value). */
  zero(key: Buffer | number): void {
    this.update(key, Buffer.alloc(this.lookupSize));
  }

  /** Delete an element; false when it was not there. */
  delete(key: Buffer | number): boolean {
    const r = c.bpf_map_delete_elem(this.fd, this.key(key));
    if (r === -ENOENT) return false;
    check('bpf_map_delete_elem', r, `cannot delete from map ${this.name}`);
    return true;
  }

  /** Every key, in the kernel's order (for an LPM trie: exactly the
   *  prefixes stored). A snapshot: keys added during the walk may be missed. */
  keys(): Buffer[] {
    const keys: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = c.bpf_map_get_next_key(this.fd, prev, next);
      if (r === -ENOENT) return keys;
      check('bpf_map_get_next_key', r, `cannot list the keys of map ${this.name}`);
      keys.push(next);
      prev = next;
    }
  }

  /** Walk the map with BPF_MAP_LOOKUP_BATCH, up to `chunk` entries per
   *  call, handing each call's packed keys and values to `take` (the
   *  buffers are reused: copy what you keep). False, with nothing taken,
   *  where the kernel has no batch lookup for the map. */
  private lookupBatches(chunk: number, take: (keys: Buffer, values: Buffer, count: number) => void): boolean {
    if (batchMissing) return false;
    const valueSize = this.lookupSize;
    let keys = Buffer.alloc(this.keySize * chunk);
    let values = Buffer.alloc(valueSize * chunk);
    // Where the walk stands (a hash bucket, an array index): the kernel
    // writes it, the next call reads it back.
    const token = Buffer.alloc(Math.max(this.keySize, 8));
    const n = Buffer.alloc(4);
    const opts = Buffer.alloc(24); // struct bpf_map_batch_opts
    opts.writeBigUInt64LE(24n, 0);
    let started = false;
    for (;;) {
      n.writeUInt32LE(chunk);
      const r = c.bpf_map_lookup_batch(this.fd, started ? Buffer.from(token) : null, token, keys, values, n, opts);
      if (r === 0 || r === -ENOENT) take(keys, values, n.readUInt32LE(0));
      if (r === -ENOENT) return true; // the walk is done
      if (r === 0) {
        started = true;
        continue;
      }
      if (-r === ENOSPC) {
        // A hash bucket holds more than a chunk: nothing was read, and the
        // token points at that bucket; try it again with room for it.
        started = true;
        chunk *= 4;
        keys = Buffer.alloc(this.keySize * chunk);
        values = Buffer.alloc(valueSize * chunk);
        continue;
      }
      if (!started && NO_BATCH.has(-r)) {
        batchMissing = true;
        return false;
      }
      throw new BpfError('bpf_map_lookup_batch', -r, `cannot read map ${this.name}`);
    }
  }

  /** Every key and value, as [key, value]: in batches where the kernel has
   *  them (one call when the map holds at most `chunk` entries), key by key
   *  otherwise. */
  entries(chunk = 4096): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    const k = this.keySize;
    const v = this.lookupSize;
    const batched = this.lookupBatches(chunk, (keys, values, count) => {
      for (let i = 0; i < count; i++) {
        out.push([Buffer.from(keys.subarray(i * k, (i + 1) * k)), Buffer.from(values.subarray(i * v, (i + 1) * v))]);
      }
    });
    if (batched) return out;
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) out.push([key, value]);
    }
    return out;
  }

  /** Hand every value to `take` as its offset in a buffer that is reused
   *  from one call to the next (copy what you keep; per-CPU maps: every
   *  CPU's, packed): a walk of a large table without a Buffer per entry,
   *  a tenth of entries()' time. */
  forEachValue(take: (values: Buffer, at: number) => void, chunk = 4096): void {
    const size = this.lookupSize;
    if (this.lookupBatches(chunk, (_keys, values, n) => {
      for (let i = 0; i < n; i++) take(values, i * size);
    })) return;
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) take(value, 0);
    }
  }

  /** How many elements the map holds: counted in batches of `chunk` (one
   *  call per chunk instead of one per key), by walking keys otherwise. */
  count(chunk = 4096): number {
    let total = 0;
    if (this.lookupBatches(chunk, (_keys, _values, n) => (total += n))) return total;
    return this.keys().length;
  }

  /** The first `count` values of an array map, packed: one batch call where
   *  the kernel has it, element by element otherwise. */
  values(count = this.maxEntries): Buffer {
    const size = this.lookupSize;
    const values = Buffer.alloc(size * count);
    if (!batchMissing) {
      const keys = Buffer.alloc(4 * count);
      const out = Buffer.alloc(4);
      const n = Buffer.alloc(4);
      n.writeUInt32LE(count);
      const opts = Buffer.alloc(24);
      opts.writeBigUInt64LE(24n, 0);
      const r = c.bpf_map_lookup_batch(this.fd, null, out, keys, values, n, opts);
      // ENOENT: the whole map was read in this one call.
      if ((r === 0 || r === -ENOENT) && n.readUInt32LE(0) === count) return values;
      if (r !== 0 && r !== -ENOENT && !NO_BATCH.has(-r)) {
        throw new BpfError('bpf_map_lookup_batch', -r, `cannot read map ${this.name} (${count} entries)`);
      }
    }
    for (let i = 0; i < count; i++) this.lookup(i)?.copy(values, i * size);
    return values;
  }

  /** Write `count` packed keys and values in one call where the kernel has
   *  batch operations for the map type, element by element otherwise. */
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    if (!count) return;
    if (!batchMissing) {
      const n = Buffer.alloc(4);
      n.writeUInt32LE(count);
      const opts = Buffer.alloc(24); // struct bpf_map_batch_opts
      opts.writeBigUInt64LE(24n, 0);
      const r = c.bpf_map_update_batch(this.fd, keys, values, n, opts);
      if (r === 0) return;
      if (!NO_BATCH.has(-r)) throw new BpfError('bpf_map_update_batch', -r, `cannot fill map ${this.name} (${count} entries)`);
      batchMissing = true;
    }
    const k = keys.length / count;
    const v = values.length / count;
    for (let i = 0; i < count; i++) this.update(keys.subarray(i * k, (i + 1) * k), values.subarray(i * v, (i + 1) * v));
  }

  /** Write array entries `ids` in one batch call. */
  updateIndexes(ids: number[], values: Buffer[]): void {
    if (!ids.length) return;
    const keys = Buffer.alloc(ids.length * 4);
    ids.forEach((id, i) => keys.writeUInt32LE(id, i * 4));
    this.updateBatch(keys, Buffer.concat(values), ids.length);
  }

  /** Run `fn` over the first `bytes` of an mmapable map's memory. */
  private withMapping<T>(bytes: number, prot: number, fn: (mem: Uint8Array) => T): T {
    const length = Math.ceil(bytes / PAGE) * PAGE;
    const ptr = c.mmap(null, length, prot, MAP_SHARED, this.fd, 0n);
    if (!ptr || address(ptr) === 0xffffffffffffffffn) throw new BpfError('mmap', errno(), `cannot map the values of map ${this.name}`);
    try {
      return fn(view(ptr, bytes));
    } finally {
      c.munmap(ptr, length);
    }
  }

  /** The first `count` values of an mmapable array, packed: one copy out of
   *  the kernel's memory instead of a lookup per element (the kernel lays
   *  elements out 8-byte aligned). */
  readMapped(count = this.maxEntries): Buffer {
    const size = this.valueSize;
    const stride = Math.ceil(size / 8) * 8;
    const out = Buffer.alloc(size * count);
    this.withMapping(stride * count, PROT_READ, (mem) => {
      const from = Buffer.from(mem.buffer, mem.byteOffset, stride * count);
      if (stride === size) from.copy(out);
      else if (size % 4 === 0) {
        // One copy out of the kernel, then packed word by word: a copy call
        // per element costs a microsecond (16,384 backends: 16 ms).
        const whole = new Uint32Array(stride * count / 4);
        new Uint8Array(whole.buffer).set(from);
        const packed = new Uint32Array(out.buffer, out.byteOffset, size * count / 4);
        const w = size / 4;
        const sw = stride / 4;
        for (let i = 0; i < count; i++) for (let j = 0; j < w; j++) packed[i * w + j] = whole[i * sw + j];
      } else for (let i = 0; i < count; i++) from.copy(out, i * size, i * stride, i * stride + size);
    });
    return out;
  }

  /** Write `count` packed values over the start of an mmapable array: one
   *  copy into the kernel's memory instead of an update per element. */
  writeMapped(values: Buffer, count: number): void {
    const size = this.valueSize;
    const stride = Math.ceil(size / 8) * 8;
    this.withMapping(stride * count, PROT_READ_WRITE, (mem) => {
      if (stride === size) {
        mem.set(values.subarray(0, size * count));
      } else if (size === 4 && values.byteOffset % 4 === 0) {
        // Word by word straight into the mapping, past the padding words
        // (nothing reads them): no staging copy, 512 KiB per 65537 table.
        const from = new Uint32Array(values.buffer, values.byteOffset, count);
        const to = new Uint32Array(mem.buffer, mem.byteOffset, count * 2);
        for (let i = 0; i < count; i++) to[i * 2] = from[i];
      } else {
        for (let i = 0; i < count; i++) values.copy(mem, i * stride, i * size, (i + 1) * size);
      }
    });
  }

  pin(path: string): void {
    pinObject(this.fd, path);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    closeFd(this.fd);
  }
}

/** Close every map of a record (null entries are skipped). */
export function closeMaps(maps: Record<string, BpfMap | null | undefined> | Array<BpfMap | null | undefined>): void {
  for (const m of Object.values(maps)) m?.close();
}
