// The libbpf binding: the only way the rest of the project reaches the kernel.
export { BpfObject, PROG_TYPE_XDP } from './object.js';
export { BpfError, errnoName } from './errors.js';
export * from './fd.js';
export { sdNotify } from './systemd.js';
export { mapKeys } from './iterate.js';
export { RingBuffer } from './ringbuf.js';
export * from './maps.js';
export * from './netns.js';
