// File-descriptor level calls: pins, maps, object info, links, XDP, test runs.
// Every failure is a BpfError naming the call, the errno and the context.
import { closeSync, openSync } from 'node:fs';
import { c, errno, alloc, free, address, view, readU32 } from './ffi.js';
import { BpfError } from './errors.js';

function check(call: string, r: number, context: string): number {
  if (r < 0) throw new BpfError(call, -r, context);
  return r;
}

export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

/** A second fd for the same kernel object (it outlives the first one). */
export function dupFd(fd: number): number {
  const copy = c.dup(fd);
  if (copy < 0) throw new BpfError('dup', errno(), `cannot duplicate fd ${fd}`);
  return copy;
}

/** Run `fn` with `fd`, closing it afterwards whatever happens. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

export function pinObject(fd: number, path: string): void {
  check('bpf_obj_pin', c.bpf_obj_pin(fd, path), `cannot pin ${path}`);
}

/** Open a pinned object; null when nothing is pinned at `path`. */
export function openPinned(path: string): number | null {
  const fd = c.bpf_obj_get(path);
  if (fd >= 0) return fd;
  if (-fd === 2 /* ENOENT */) return null;
  throw new BpfError('bpf_obj_get', -fd, `cannot open pinned object ${path}`);
}

// ---- maps ----

/** Look an element up; null when the key has no value (ENOENT). */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null {
  const value = Buffer.alloc(valueSize);
  const r = c.bpf_map_lookup_elem(fd, key, value);
  if (r === -2) return null;
  check('bpf_map_lookup_elem', r, `cannot read map fd ${fd}`);
  return value;
}

/** Per-CPU maps hand back one value per possible CPU, each rounded to 8 bytes. */
export function mapLookupPerCpu(fd: number, key: Buffer, valueSize: number): Buffer[] | null {
  const stride = Math.ceil(valueSize / 8) * 8;
  const cpus = possibleCpus();
  const all = mapLookup(fd, key, stride * cpus);
  if (!all) return null;
  return Array.from({ length: cpus }, (_, i) => all.subarray(i * stride, i * stride + valueSize));
}

export const UPDATE_ANY = 0n;
export const UPDATE_NOEXIST = 1n;
export const UPDATE_EXIST = 2n;

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = UPDATE_ANY): void {
  check('bpf_map_update_elem', c.bpf_map_update_elem(fd, key, value, flags), `cannot update map fd ${fd}`);
}

/** Delete an element; false when it was not there. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const r = c.bpf_map_delete_elem(fd, key);
  if (r === -2) return false;
  check('bpf_map_delete_elem', r, `cannot delete from map fd ${fd}`);
  return true;
}

let cpuCount = 0;
export function possibleCpus(): number {
  if (!cpuCount) cpuCount = check('libbpf_num_possible_cpus', c.libbpf_num_possible_cpus(), 'cannot count CPUs');
  return cpuCount;
}

// ---- object info ----

function objInfo(fd: number, size: number, what: string, prepare?: (info: Buffer) => void): Buffer {
  const info = Buffer.alloc(size);
  prepare?.(info);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  check('bpf_obj_get_info_by_fd', c.bpf_obj_get_info_by_fd(fd, info, len), `cannot read ${what} info of fd ${fd}`);
  return info;
}

export interface ProgInfo {
  id: number;
  type: number;
  /** The kernel's name (at most 15 characters). */
  kernelName: string;
  /** Nanoseconds since boot (CLOCK_BOOTTIME) when it was loaded. */
  loadTime: bigint;
  mapIds: number[];
  btfId: number;
  /** Type id of the main function in the program's BTF, 0 when none. */
  funcTypeId: number;
}

// struct bpf_prog_info offsets (UAPI, stable; checked against vmlinux BTF in
// test/kernel/layout.test.ts).
export const PROG_INFO = {
  size: 232, type: 0, id: 4, load_time: 40, nr_map_ids: 52, map_ids: 56, name: 64,
  btf_id: 128, func_info_rec_size: 132, func_info: 136, nr_func_info: 144,
} as const;
const MAX_MAP_IDS = 64;

export function progInfo(fd: number): ProgInfo {
  const ids = alloc(MAX_MAP_IDS * 4);
  const func = alloc(8);
  try {
    const info = objInfo(fd, PROG_INFO.size, 'program', (b) => {
      b.writeUInt32LE(MAX_MAP_IDS, PROG_INFO.nr_map_ids);
      b.writeBigUInt64LE(address(ids), PROG_INFO.map_ids);
      b.writeUInt32LE(1, PROG_INFO.nr_func_info);
      b.writeUInt32LE(8, PROG_INFO.func_info_rec_size);
      b.writeBigUInt64LE(address(func), PROG_INFO.func_info);
    });
    const nrMaps = Math.min(info.readUInt32LE(PROG_INFO.nr_map_ids), MAX_MAP_IDS);
    const idBuf = view(ids, nrMaps * 4);
    const nrFunc = info.readUInt32LE(PROG_INFO.nr_func_info);
    const name = info.subarray(PROG_INFO.name, PROG_INFO.name + 16);
    return {
      id: info.readUInt32LE(PROG_INFO.id),
      type: info.readUInt32LE(PROG_INFO.type),
      kernelName: name.subarray(0, Math.max(0, name.indexOf(0)) || 16).toString('utf8'),
      loadTime: info.readBigUInt64LE(PROG_INFO.load_time),
      mapIds: Array.from({ length: nrMaps }, (_, i) => idBuf.readUInt32LE(i * 4)),
      btfId: info.readUInt32LE(PROG_INFO.btf_id),
      funcTypeId: nrFunc > 0 ? view(func, 8).readUInt32LE(4) : 0,
    };
  } finally {
    free(ids);
    free(func);
  }
}

/** The program's full name from its BTF (the kernel keeps only 15 characters). */
export function progFullName(info: ProgInfo): string {
  if (info.kernelName.length < 15 || !info.btfId || !info.funcTypeId) return info.kernelName;
  const btf = c.btf__load_from_kernel_by_id(info.btfId);
  if (!btf) return info.kernelName;
  try {
    const type = c.btf__type_by_id(btf, info.funcTypeId);
    if (!type) return info.kernelName;
    const name = c.btf__name_by_offset(btf, readU32(type));
    return name || info.kernelName;
  } finally {
    c.btf__free(btf);
  }
}

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

export const LINK_TYPE_XDP = 6;

export interface LinkInfo {
  id: number;
  type: number;
  progId: number;
  /** For an XDP link, its device; 0 once the device is gone. */
  ifindex: number;
}

export function linkInfo(fd: number): LinkInfo {
  const info = objInfo(fd, 64, 'link');
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    progId: info.readUInt32LE(8),
    ifindex: info.readUInt32LE(16),
  };
}

/** A program by id; null when no such program exists any more. */
export function progFdById(id: number): number | null {
  const fd = c.bpf_prog_get_fd_by_id(id);
  if (fd === -2) return null;
  return check('bpf_prog_get_fd_by_id', fd, `cannot open program id ${id}`);
}

export function linkFdById(id: number): number | null {
  const fd = c.bpf_link_get_fd_by_id(id);
  if (fd === -2) return null;
  return check('bpf_link_get_fd_by_id', fd, `cannot open link id ${id}`);
}

export function linkIds(): number[] {
  const ids: number[] = [];
  const next = Buffer.alloc(4);
  let id = 0;
  for (;;) {
    const r = c.bpf_link_get_next_id(id, next);
    if (r === -2) return ids;
    check('bpf_link_get_next_id', r, 'cannot list BPF links');
    id = next.readUInt32LE(0);
    ids.push(id);
  }
}

// ---- XDP ----

export const XDP_FLAGS = { UPDATE_IF_NOEXIST: 1, SKB_MODE: 2, DRV_MODE: 4, HW_MODE: 8, REPLACE: 16 } as const;
const ATTACH_TYPE_XDP = 37;

/** Attach through a bpf_link (kernel 5.9+); returns the link's fd. */
export function xdpLinkCreate(progFd: number, ifindex: number, flags: number, context: string): number {
  const opts = Buffer.alloc(16); // bpf_link_create_opts up to `flags`
  opts.writeBigUInt64LE(16n, 0);
  opts.writeUInt32LE(flags, 8);
  return check('bpf_link_create', c.bpf_link_create(progFd, ifindex, ATTACH_TYPE_XDP, opts), context);
}

export function linkDetach(fd: number, context: string): void {
  check('bpf_link_detach', c.bpf_link_detach(fd), context);
}

/** Attach through netlink (kernels without XDP links). */
export function xdpAttachNetlink(ifindex: number, progFd: number, flags: number, context: string): void {
  check('bpf_xdp_attach', c.bpf_xdp_attach(ifindex, progFd, flags, null), context);
}

export function xdpDetachNetlink(ifindex: number, flags: number, context: string): void {
  check('bpf_xdp_detach', c.bpf_xdp_detach(ifindex, flags, null), context);
}

export type XdpAttachMode = 'none' | 'native' | 'skb' | 'hw' | 'multi';
const ATTACH_MODES: XdpAttachMode[] = ['none', 'native', 'skb', 'hw', 'multi'];

export interface XdpQuery {
  mode: XdpAttachMode;
  /** The single attached program, 0 when none or several. */
  progId: number;
  drvProgId: number;
  skbProgId: number;
  hwProgId: number;
}

export function xdpQuery(ifindex: number): XdpQuery {
  const opts = Buffer.alloc(32); // bpf_xdp_query_opts as of libbpf 1.1
  opts.writeBigUInt64LE(32n, 0);
  check('bpf_xdp_query', c.bpf_xdp_query(ifindex, 0, opts), `cannot query XDP on ifindex ${ifindex}`);
  return {
    progId: opts.readUInt32LE(8),
    drvProgId: opts.readUInt32LE(12),
    hwProgId: opts.readUInt32LE(16),
    skbProgId: opts.readUInt32LE(20),
    mode: ATTACH_MODES[opts.readUInt8(24)] ?? 'multi',
  };
}

// ---- test runs ----

export interface TestRun {
  retval: number;
  /** Average ns per repetition, as the kernel measured it. */
  duration: number;
  data: Buffer;
}

/** Run a program on one packet with BPF_PROG_TEST_RUN; `ingressIfindex`
 *  (a device of the caller's network namespace) is what the program sees as
 *  ctx->ingress_ifindex, loopback when 0. */
export function testRun(progFd: number, packet: Buffer, repeat = 1, ingressIfindex = 0): TestRun {
  const outSize = packet.length + 512;
  const dataIn = alloc(packet.length);
  const dataOut = alloc(outSize);
  const ctx = alloc(24); // struct xdp_md
  try {
    view(dataIn, packet.length).set(packet);
    const opts = Buffer.alloc(80); // struct bpf_test_run_opts
    opts.writeBigUInt64LE(80n, 0);
    opts.writeBigUInt64LE(address(dataIn), 8);
    opts.writeBigUInt64LE(address(dataOut), 16);
    opts.writeUInt32LE(packet.length, 24);
    opts.writeUInt32LE(outSize, 28);
    opts.writeInt32LE(repeat, 60);
    if (ingressIfindex) {
      const md = Buffer.alloc(24); // data 0, data_end, data_meta 0, ingress_ifindex, rx_queue 0, egress 0
      md.writeUInt32LE(packet.length, 4);
      md.writeUInt32LE(ingressIfindex, 12);
      view(ctx, 24).set(md);
      opts.writeBigUInt64LE(address(ctx), 32);
      opts.writeUInt32LE(24, 48);
    }
    check('bpf_prog_test_run_opts', c.bpf_prog_test_run_opts(progFd, opts), `cannot test-run program fd ${progFd}`);
    const outLen = opts.readUInt32LE(28);
    return { retval: opts.readUInt32LE(56), duration: opts.readUInt32LE(64), data: Buffer.from(view(dataOut, outLen)) };
  } finally {
    free(dataIn);
    free(dataOut);
    free(ctx);
  }
}

// ---- interfaces and mounts (libc) ----

/** The interface's index in this network namespace, 0 when there is none.
 *  (sysfs shows the namespace it was mounted in, so ask the kernel.) */
export function ifNameToIndex(name: string): number {
  return c.if_nametoindex(name);
}

export function ifIndexToName(ifindex: number): string | null {
  const buf = Buffer.alloc(16);
  return c.if_indextoname(ifindex, buf) ? buf.toString('utf8', 0, buf.indexOf(0)) : null;
}

export interface LinkState {
  flags: number;
  mtu: number;
}

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCGIFFLAGS = 0x8913;
const SIOCGIFMTU = 0x8921;

/** Flags and MTU of an interface in this network namespace (SIOCGIFFLAGS,
 *  SIOCGIFMTU); null when there is no such interface. */
export function linkState(name: string): LinkState | null {
  const sock = c.socket(AF_INET, SOCK_DGRAM, 0);
  if (sock < 0) throw new BpfError('socket', errno(), 'cannot open a socket to query interfaces');
  try {
    const ifreq = Buffer.alloc(40); // struct ifreq: name[16], then the union
    ifreq.write(name, 0, 15, 'utf8');
    if (c.ioctl(sock, SIOCGIFFLAGS, 'void *', ifreq) < 0) {
      if (errno() === 19 /* ENODEV */) return null;
      throw new BpfError('ioctl(SIOCGIFFLAGS)', errno(), `cannot read the flags of ${name}`);
    }
    const flags = ifreq.readUInt16LE(16);
    if (c.ioctl(sock, SIOCGIFMTU, 'void *', ifreq) < 0) {
      throw new BpfError('ioctl(SIOCGIFMTU)', errno(), `cannot read the MTU of ${name}`);
    }
    return { flags, mtu: ifreq.readInt32LE(16) };
  } finally {
    c.close(sock);
  }
}

const LOCK_SH = 1;
const LOCK_EX = 2;

/** Run `fn` holding a flock(2) on a directory (bpffs takes them like any
 *  file system), exclusive or shared; it goes with the fd when `fn`
 *  returns. */
export function withDirLock<T>(dir: string, fn: () => T, shared = false): T {
  const fd = openSync(dir, 'r');
  try {
    if (c.flock(fd, shared ? LOCK_SH : LOCK_EX) < 0) throw new BpfError('flock', errno(), `cannot lock ${dir}`);
    return fn();
  } finally {
    closeSync(fd);
  }
}

export function mountBpffs(target: string): void {
  if (c.mount('bpf', target, 'bpf', 0, 'mode=0700') < 0) {
    throw new BpfError('mount', errno(), `cannot mount bpffs on ${target}`);
  }
}

// ---- time ----

const CLOCK_BOOTTIME = 7;

/** CLOCK_BOOTTIME in ns: the clock of bpf_prog_info.load_time. */
export function bootTimeNs(): bigint {
  const ts = Buffer.alloc(16);
  c.clock_gettime(CLOCK_BOOTTIME, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

const CLOCK_MONOTONIC = 1;

/** CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns(). */
export function monotonicNs(): bigint {
  const ts = Buffer.alloc(16);
  c.clock_gettime(CLOCK_MONOTONIC, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}
