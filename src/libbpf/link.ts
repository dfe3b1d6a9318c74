// Links and XDP attachment: bpf_link (the way we attach), netlink (for
// programs attached without a link), and what a device has attached.
import { c } from './ffi.js';
import { check } from './errors.js';
import { objInfo } from './fd.js';

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
