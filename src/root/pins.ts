// Where state lives in bpffs, and whose it is.
//
//   /sys/fs/bpf/xdplb/                     the pin root (every directory has an `abi` marker)
//   └── netns-<cookie>/                    one network namespace
//       ├── if-<ifindex>/                  one interface: its root array and per-interface maps
//       │   └── <program>/                 a subprogram's maps on that interface
//       └── <program>/                     a subprogram's state shared by the namespace's interfaces
//
// An interface is its network namespace and its ifindex, not its name: the
// bpffs is shared by every namespace on the host, and two `eth0`s in two
// namespaces are two interfaces. The namespace is named by its cookie
// (SO_NETNS_COOKIE), which is never reused while the system runs, so pins of
// a namespace that is gone are never taken over by a new one. A new device
// gets a new ifindex, so it never inherits a deleted device's chain.
import { existsSync, mkdirSync, chmodSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfMap, MAP_F, MAP_TYPE, closeFd, linkInfo, openPinned } from '../libbpf/index.js';
import { XdplbError } from '../errors.js';
import { isBpffsMounted, mountBpffs } from '../sys/mount.js';
import { netnsCookie, netnsInode } from '../sys/netns.js';
import { withDirLock } from '../sys/lock.js';
import { ifIndexToName, ifNameToIndex } from '../sys/netdev.js';
import { validateInterfaceName } from '../net/interface.js';
import { ABI_VERSION } from '../version.js';

export const SLOTS = 8;
export const BPFFS = '/sys/fs/bpf';

export const PIN = {
  abi: 'abi', root: 'root', link: 'link', slots: 'slots', stats: 'stats', slot_mask: 'slot_mask',
  samples: 'samples', sampling: 'sampling', sample_stats: 'sample_stats',
} as const;

/** The root of our pins: /sys/fs/bpf/xdplb, or $XDPLB_PIN_ROOT. */
export function pinRoot(): string {
  return process.env.XDPLB_PIN_ROOT || join(BPFFS, 'xdplb');
}

const NS_PREFIX = 'netns-';
const IF_PREFIX = 'if-';

/** This process's network namespace's directory. */
export function namespaceDir(): string {
  return join(pinRoot(), `${NS_PREFIX}${netnsCookie()}`);
}

/** An interface of this network namespace. */
export interface Iface {
  name: string;
  ifindex: number;
}

export function ifaceDir(iface: { ifindex: number }): string {
  return join(namespaceDir(), `${IF_PREFIX}${iface.ifindex}`);
}

/** A subprogram's maps kept for one interface. */
export function programDir(iface: { ifindex: number }, program: string): string {
  return join(ifaceDir(iface), program);
}

/** A subprogram's maps shared by every interface of this namespace. */
export function sharedDir(program: string): string {
  return join(namespaceDir(), program);
}

/** The interface `name` as this namespace's kernel knows it now. */
export function resolveIface(name: string): Iface {
  const ifindex = ifNameToIndex(validateInterfaceName(name));
  if (!ifindex) throw new XdplbError(`unknown interface '${name}': no such network device in this namespace`);
  return { name, ifindex };
}

// ---- markers ----

/** What a directory holds, recorded in its marker. */
export const KIND = { root: 0, namespace: 1, interface: 2, program: 3, shared: 4 } as const;
type Kind = keyof typeof KIND;

/** The `abi` pin of every directory: a one-entry array the programs never
 *  read (BPF_F_RDONLY_PROG) holding { __u32 abi, kind, ifindex,
 *  netns_inode; char ifname[16]; }: the ABI the directory's state was
 *  made by, and for an interface, its index and name when it was attached
 *  (a deleted device is still reported by name). */
const MARKER = { size: 32, abi: 0, kind: 4, ifindex: 8, netns_inode: 12, ifname: 16 } as const;
const MARKER_MAP = 'xdplb_abi';

export interface Marker {
  abi: number;
  kind: Kind;
  ifindex: number;
  netnsInode: number;
  ifname: string;
}

export function readMarker(dir: string): Marker | null {
  const map = BpfMap.openPinned(join(dir, PIN.abi));
  if (!map) return null;
  try {
    const v = map.valueSize === MARKER.size ? map.lookup(0) : null;
    if (!v) return { abi: 0, kind: 'root', ifindex: 0, netnsInode: 0, ifname: '' };
    const name = v.subarray(MARKER.ifname, MARKER.ifname + 16);
    const kind = (Object.keys(KIND) as Kind[]).find((k) => KIND[k] === v.readUInt32LE(MARKER.kind)) ?? 'root';
    return {
      abi: v.readUInt32LE(MARKER.abi),
      kind,
      ifindex: v.readUInt32LE(MARKER.ifindex),
      netnsInode: v.readUInt32LE(MARKER.netns_inode),
      ifname: name.toString('utf8', 0, Math.max(0, name.indexOf(0)) || 16),
    };
  } finally {
    map.close();
  }
}

function writeMarker(dir: string, kind: Kind, iface?: Iface): void {
  const v = Buffer.alloc(MARKER.size);
  v.writeUInt32LE(ABI_VERSION, MARKER.abi);
  v.writeUInt32LE(KIND[kind], MARKER.kind);
  v.writeUInt32LE(iface?.ifindex ?? 0, MARKER.ifindex);
  v.writeUInt32LE(netnsInode() >>> 0, MARKER.netns_inode);
  if (iface) v.write(iface.name, MARKER.ifname, 15, 'utf8');
  const map = BpfMap.create(MAP_TYPE.ARRAY, MARKER_MAP, 4, MARKER.size, 1, MAP_F.RDONLY_PROG);
  try {
    map.update(0, v);
    map.pin(join(dir, PIN.abi));
  } finally {
    map.close();
  }
}

/** Refuse state another ABI made (its maps would be misread), before
 *  anything is changed, saying how to recover. */
export function checkMarker(dir: string, recovery: string): void {
  const m = readMarker(dir);
  if (m && m.abi === ABI_VERSION) return;
  const made = m ? `ABI ${m.abi}` : 'an xdplb without ABI markers';
  throw new XdplbError(`the state pinned in ${dir} was made by ${made}, not ABI ${ABI_VERSION}: ${recovery}`);
}

// ---- directories ----

/** Whether pins made here would outlive this process: a bpffs we would
 *  have to mount ourselves in a mount namespace made just for this command
 *  (as `ip netns exec` makes one, remounting /sys) goes away when it exits.
 *  Such a namespace is not the one of the process that started us. */
function checkLastingBpffs(): void {
  if (process.env.XDPLB_PIN_ROOT || isBpffsMounted(BPFFS)) return;
  const mountNs = (pid: string) => {
    try {
      return statSync(`/proc/${pid}/ns/mnt`).ino;
    } catch {
      return null;
    }
  };
  const ours = mountNs('self');
  const theirs = mountNs(String(process.ppid)) ?? mountNs('1');
  if (ours !== null && theirs !== null && ours !== theirs) {
    throw new XdplbError(
      `no bpffs is mounted on ${BPFFS} in this mount namespace (ip netns exec remounts /sys): pins made here would ` +
        'vanish when this command exits and take the data plane with them; run it as ' +
        '`nsenter --net=/run/netns/NAME xdp-root ...` instead, which keeps the host\'s /sys/fs/bpf',
    );
  }
}

function makeDir(dir: string, kind: Kind, iface?: Iface): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o700);
  writeMarker(dir, kind, iface);
}

function ensureRoot(): void {
  checkLastingBpffs();
  if (!process.env.XDPLB_PIN_ROOT && !isBpffsMounted(BPFFS)) mountBpffs(BPFFS);
  const root = pinRoot();
  if (!existsSync(dirname(root))) mkdirSync(dirname(root), { recursive: true, mode: 0o700 });
  makeDir(root, 'root');
}

/** `dir` in the namespace's directory, both made when missing. A namespace
 *  directory is made and removed (pruneNamespaceDir) under the pin root's
 *  lock, with what it is made for, so it is never removed in between. */
function ensureInNamespace(dir: string, kind: Kind, iface?: Iface): string {
  ensureRoot();
  return withDirLock(pinRoot(), () => {
    makeDir(namespaceDir(), 'namespace');
    makeDir(dir, kind, iface);
    return dir;
  });
}

/** The interface's directory, made (0700, with its marker) when missing. */
export function ensureIfaceDir(iface: Iface): string {
  return ensureInNamespace(ifaceDir(iface), 'interface', iface);
}

/** A subprogram's directory under `parent` (an interface's directory, or
 *  the namespace's for shared state), made when missing. */
export function ensureProgramDir(dir: string): string {
  const parent = dirname(dir);
  if (parent === namespaceDir()) return ensureInNamespace(dir, 'shared');
  if (!existsSync(parent)) throw new XdplbError(`cannot pin under ${parent}: it does not exist`);
  makeDir(dir, 'program');
  return dir;
}

/** Remove the namespace's directory once it holds nothing but its marker:
 *  its last interface detached and its shared state purged, nothing of
 *  ours is left pinned for it. */
export function pruneNamespaceDir(): void {
  const dir = namespaceDir();
  if (!existsSync(dir)) return;
  withDirLock(pinRoot(), () => {
    const names = existsSync(dir) ? readdirSync(dir) : [];
    if (names.length === 1 && names[0] === PIN.abi) rmSync(dir, { recursive: true, force: true });
  });
}

// ---- what is pinned ----

export interface PinnedIface extends Iface {
  dir: string;
  /** The device it was attached to no longer exists: its pins are stale. */
  gone: boolean;
}

/** The interfaces of this namespace that have a root array pinned, by
 *  name: the device's current name, or for a device that is gone the name
 *  it had. */
export function pinnedIfaces(): PinnedIface[] {
  let base: string;
  try {
    base = namespaceDir();
  } catch {
    return [];
  }
  if (!existsSync(base)) return [];
  const out: PinnedIface[] = [];
  for (const e of readdirSync(base, { withFileTypes: true })) {
    if (!e.isDirectory() || !e.name.startsWith(IF_PREFIX)) continue;
    const dir = join(base, e.name);
    const ifindex = Number(e.name.slice(IF_PREFIX.length));
    const marker = readMarker(dir);
    const current = ifIndexToName(ifindex);
    const gone = current === null || linkGone(dir);
    out.push({ dir, ifindex, name: (!gone && current) || marker?.ifname || e.name, gone });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.ifindex - b.ifindex);
}

/** The root's link points at no device any more (deleted, or moved to
 *  another namespace). */
function linkGone(dir: string): boolean {
  let fd: number | null;
  try {
    fd = openPinned(join(dir, PIN.link));
  } catch {
    return false;
  }
  if (fd === null) return false;
  try {
    return linkInfo(fd).ifindex === 0;
  } finally {
    closeFd(fd);
  }
}

/** The pinned interface a command names: the live device of that name, or
 *  pins left by devices of that name that are gone. */
export function findPinned(name: string): { live: PinnedIface | null; gone: PinnedIface[] } {
  validateInterfaceName(name);
  const all = pinnedIfaces().filter((p) => p.name === name);
  return { live: all.find((p) => !p.gone) ?? null, gone: all.filter((p) => p.gone) };
}

// ---- objects ----

const here = dirname(fileURLToPath(import.meta.url));

/** Directory of the built BPF objects: $XDPLB_BPF_DIR, the checkout's
 *  build/bpf, or the package's /usr/lib/xdplb/bpf (both next to the bundle). */
export function bpfObjectDir(): string {
  if (process.env.XDPLB_BPF_DIR) return process.env.XDPLB_BPF_DIR;
  const candidates = [resolve(here, '../build/bpf'), resolve(here, '../../build/bpf'), resolve(here, '../bpf')];
  return candidates.find((d) => existsSync(join(d, 'xdp_root.o'))) ?? candidates[0];
}

export function bpfObject(name: string): string {
  return join(bpfObjectDir(), name);
}

/** Directories under the pin root that are not ours to read: left by an
 *  xdplb from before network namespace directories (named after an
 *  interface). Reported, never touched. */
export function foreignPins(): string[] {
  const root = pinRoot();
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith(NS_PREFIX))
    .map((e) => join(root, e.name));
}
