// The libbpf binding: the only way the rest of the project reaches the
// kernel's BPF objects.
export { BpfObject, PROG_TYPE_XDP } from './object.js';
export { BpfError, errnoName } from './errors.js';
export { closeFd, dupFd, withFd, pinObject, openPinned } from './fd.js';
export * from './map.js';
export * from './prog.js';
export * from './link.js';
export * from './testrun.js';
export { RingBuffer } from './ringbuf.js';
