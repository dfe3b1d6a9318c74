// Walking a map's keys with bpf_map_get_next_key.
import { c } from './ffi.js';
import { BpfError } from './errors.js';

/** Every key of a map, in the kernel's order (for an LPM trie: exactly the
 *  prefixes stored). A snapshot: keys added during the walk may be missed. */
export function mapKeys(fd: number, keySize: number): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const r = c.bpf_map_get_next_key(fd, prev, next);
    if (r === -2) return keys; // ENOENT: no more keys
    if (r < 0) throw new BpfError('bpf_map_get_next_key', -r, `cannot list the keys of map fd ${fd}`);
    keys.push(next);
    prev = next;
  }
}
