// Programs: their info (id, name, load time, maps) and finding them by id.
import { c, alloc, free, address, view, readU32 } from './ffi.js';
import { check } from './errors.js';
import { objInfo, withFd } from './fd.js';

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

/** A program by id; null when no such program exists any more. */
export function progFdById(id: number): number | null {
  const fd = c.bpf_prog_get_fd_by_id(id);
  if (fd === -2) return null;
  return check('bpf_prog_get_fd_by_id', fd, `cannot open program id ${id}`);
}

/** Whether a program id still names a live program (and what it is). */
export function describeProg(id: number): ProgInfo | null {
  const fd = progFdById(id);
  return fd === null ? null : withFd(fd, progInfo);
}
