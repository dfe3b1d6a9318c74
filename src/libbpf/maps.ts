// Maps made from userspace, filled in batches, and walked key by key (the
// load balancer's Maglev tables and its VIP and backend maps).
import { c, address, errno, view } from './ffi.js';
import { BpfError } from './errors.js';
import { UPDATE_ANY, mapLookup, mapUpdate } from './fd.js';
import { mapKeys } from './iterate.js';

export const MAP_TYPE_HASH = 1;
export const MAP_TYPE_ARRAY = 2;
/** An array userspace can mmap. */
export const MAP_F_MMAPABLE = 1 << 10;
/** Inner arrays of a map-in-map may differ in max_entries. */
export const MAP_F_INNER_MAP = 1 << 12;

/** Create a map; returns its fd (the caller closes it). */
export function mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags = 0): number {
  const opts = Buffer.alloc(48); // struct bpf_map_create_opts
  opts.writeBigUInt64LE(48n, 0);
  opts.writeUInt32LE(flags, 28);
  const fd = c.bpf_map_create(type, name, keySize, valueSize, maxEntries, opts);
  if (fd < 0) throw new BpfError('bpf_map_create', -fd, `cannot create map ${name} (${maxEntries} entries)`);
  return fd;
}

let batchMissing = false;

/** Write `count` consecutive keys and values (packed) in one call where the
 *  kernel has batch operations for the map type, element by element
 *  otherwise. */
export function mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number): void {
  if (!count) return;
  if (!batchMissing) {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(count);
    const opts = Buffer.alloc(24); // struct bpf_map_batch_opts
    opts.writeBigUInt64LE(24n, 0);
    const r = c.bpf_map_update_batch(fd, keys, values, n, opts);
    if (r === 0) return;
    if (-r !== 22 /* EINVAL */ && -r !== 95 /* EOPNOTSUPP */ && -r !== 524 /* ENOTSUPP */) {
      throw new BpfError('bpf_map_update_batch', -r, `cannot fill map fd ${fd} (${count} entries)`);
    }
    batchMissing = true;
  }
  const k = keys.length / count;
  const v = values.length / count;
  for (let i = 0; i < count; i++) mapUpdate(fd, keys.subarray(i * k, (i + 1) * k), values.subarray(i * v, (i + 1) * v), UPDATE_ANY);
}

/** Every value of an array map (`count` entries from index 0), packed: one
 *  batch call where the kernel has it, element by element otherwise. */
export function arrayValues(fd: number, valueSize: number, count: number): Buffer {
  const values = Buffer.alloc(valueSize * count);
  if (!batchMissing) {
    const keys = Buffer.alloc(4 * count);
    const out = Buffer.alloc(4);
    const n = Buffer.alloc(4);
    n.writeUInt32LE(count);
    const opts = Buffer.alloc(24);
    opts.writeBigUInt64LE(24n, 0);
    const r = c.bpf_map_lookup_batch(fd, null, out, keys, values, n, opts);
    // ENOENT: the whole map was read in this one call.
    if ((r === 0 || r === -2) && n.readUInt32LE(0) === count) return values;
    if (r !== 0 && r !== -2 && -r !== 22 && -r !== 95 && -r !== 524) {
      throw new BpfError('bpf_map_lookup_batch', -r, `cannot read map fd ${fd} (${count} entries)`);
    }
  }
  const key = Buffer.alloc(4);
  for (let i = 0; i < count; i++) {
    key.writeUInt32LE(i);
    const v = mapLookup(fd, key, valueSize);
    if (v) v.copy(values, i * valueSize);
  }
  return values;
}

const ENOENT = 2;
const ENOSPC = 28;
/** Errors meaning "no batch operations for this map type or kernel". */
const NO_BATCH = new Set([22 /* EINVAL */, 95 /* EOPNOTSUPP */, 524 /* ENOTSUPP */]);

/** Walk a map with BPF_MAP_LOOKUP_BATCH, up to `chunk` entries per call,
 *  handing each call's packed keys and values to `take` (the buffers are
 *  reused: copy what you keep). False, with nothing taken, where the kernel
 *  has no batch lookup for the map. */
function lookupBatches(
  fd: number, keySize: number, valueSize: number, chunk: number, take: (keys: Buffer, values: Buffer, count: number) => void,
): boolean {
  if (batchMissing) return false;
  let keys = Buffer.alloc(keySize * chunk);
  let values = Buffer.alloc(valueSize * chunk);
  // Where the walk stands (a hash bucket, an array index): the kernel
  // writes it, the next call reads it back.
  const token = Buffer.alloc(Math.max(keySize, 8));
  const n = Buffer.alloc(4);
  const opts = Buffer.alloc(24); // struct bpf_map_batch_opts
  opts.writeBigUInt64LE(24n, 0);
  let started = false;
  for (;;) {
    n.writeUInt32LE(chunk);
    const r = c.bpf_map_lookup_batch(fd, started ? Buffer.from(token) : null, token, keys, values, n, opts);
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
      keys = Buffer.alloc(keySize * chunk);
      values = Buffer.alloc(valueSize * chunk);
      continue;
    }
    if (!started && NO_BATCH.has(-r)) {
      batchMissing = true;
      return false;
    }
    throw new BpfError('bpf_map_lookup_batch', -r, `cannot read map fd ${fd}`);
  }
}

/** Every key and value of a map, as [key, value]: in batches where the
 *  kernel has them (one call when the map holds at most `chunk` entries),
 *  key by key otherwise. */
export function mapEntries(fd: number, keySize: number, valueSize: number, chunk = 4096): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  const batched = lookupBatches(fd, keySize, valueSize, chunk, (keys, values, count) => {
    for (let i = 0; i < count; i++) {
      out.push([Buffer.from(keys.subarray(i * keySize, (i + 1) * keySize)), Buffer.from(values.subarray(i * valueSize, (i + 1) * valueSize))]);
    }
  });
  if (batched) return out;
  for (const key of mapKeys(fd, keySize)) {
    const value = mapLookup(fd, key, valueSize);
    if (value) out.push([key, value]);
  }
  return out;
}

/** How many elements a hash map holds: read in batches of `chunk` (one
 *  call per chunk instead of one per key), by walking keys where the kernel
 *  has no batch lookup. */
export function mapCount(fd: number, keySize: number, valueSize: number, chunk = 4096): number {
  let total = 0;
  if (lookupBatches(fd, keySize, valueSize, chunk, (_keys, _values, count) => (total += count))) return total;
  let count = 0;
  const next = Buffer.alloc(keySize);
  let prev: Buffer | null = null;
  while (c.bpf_map_get_next_key(fd, prev, next) === 0) {
    count++;
    prev = Buffer.from(next);
  }
  return count;
}

/** A map by id (e.g. the inner map a map-in-map holds); null when gone. */
export function mapFdById(id: number): number | null {
  const fd = c.bpf_map_get_fd_by_id(id);
  if (fd === -2) return null;
  if (fd < 0) throw new BpfError('bpf_map_get_fd_by_id', -fd, `cannot open map id ${id}`);
  return fd;
}

const PAGE = 4096;
const PROT_READ = 1;
const PROT_READ_WRITE = 3;
const MAP_SHARED = 1;

/** Run `fn` over the first `bytes` of an mmapable map's memory. */
function withMapping<T>(fd: number, bytes: number, prot: number, fn: (mem: Uint8Array) => T): T {
  const length = Math.ceil(bytes / PAGE) * PAGE;
  const ptr = c.mmap(null, length, prot, MAP_SHARED, fd, 0n);
  if (!ptr || address(ptr) === 0xffffffffffffffffn) throw new BpfError('mmap', errno(), `cannot map the values of map fd ${fd}`);
  try {
    return fn(view(ptr, bytes));
  } finally {
    c.munmap(ptr, length);
  }
}

/** The first `count` values of an mmapable array map, packed: one copy out
 *  of the kernel's memory instead of a lookup per element (the kernel lays
 *  elements out 8-byte aligned). */
export function arrayReadMapped(fd: number, valueSize: number, count: number): Buffer {
  const stride = Math.ceil(valueSize / 8) * 8;
  const out = Buffer.alloc(valueSize * count);
  withMapping(fd, stride * count, PROT_READ, (mem) => {
    const from = Buffer.from(mem.buffer, mem.byteOffset, stride * count);
    if (stride === valueSize) from.copy(out);
    else for (let i = 0; i < count; i++) from.copy(out, i * valueSize, i * stride, i * stride + valueSize);
  });
  return out;
}

/** Write `count` packed values of `valueSize` bytes over the start of an
 *  mmapable array map: one copy into the kernel's memory instead of an
 *  update per element. The kernel lays elements out 8-byte aligned. */
export function arrayWriteMapped(fd: number, values: Buffer, valueSize: number, count: number): void {
  const stride = Math.ceil(valueSize / 8) * 8;
  withMapping(fd, stride * count, PROT_READ_WRITE, (mem) => {
    if (stride === valueSize) {
      mem.set(values.subarray(0, valueSize * count));
    } else if (valueSize === 4 && values.byteOffset % 4 === 0) {
      // Word by word straight into the mapping, past the padding words
      // (nothing reads them): no staging copy, 512 KiB per 65537 table.
      const from = new Uint32Array(values.buffer, values.byteOffset, count);
      const to = new Uint32Array(mem.buffer, mem.byteOffset, count * 2);
      for (let i = 0; i < count; i++) to[i * 2] = from[i];
    } else {
      for (let i = 0; i < count; i++) values.copy(mem, i * stride, i * valueSize, (i + 1) * valueSize);
    }
  });
}
