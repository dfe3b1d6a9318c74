// Attaching and detaching the root array on interfaces. Every request is
// checked for all interfaces before the kernel is touched, and a failure
// part-way undoes what this request did. An interface is its namespace and
// ifindex (see pins.ts): another namespace's interface of the same name is
// never seen, and a new device never inherits a deleted one's chain.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfError, XDP_FLAGS, closeFd, describeProg, linkDetach, linkFdById, linkIds, linkInfo, openPinned, pinObject,
  progFdById, progFullName, withFd, xdpAttachNetlink, xdpDetachNetlink, xdpLinkCreate, xdpQuery, LINK_TYPE_XDP,
} from '../libbpf/index.js';
import { UsageError, XdplbError } from '../errors.js';
import { withDirLock } from '../sys/lock.js';
import { linkState, vethPeer } from '../sys/netdev.js';
import { Undo } from '../undo.js';
import { PIN, ensureIfaceDir, findPinned, ifaceDir, namespaceDir, pruneNamespaceDir, resolveIface, type Iface, type PinnedIface } from './pins.js';
import { RootArray, removePins } from './array.js';

export const MODES = ['native', 'skb', 'auto'] as const;
export type Mode = (typeof MODES)[number];
export type AttachedMode = 'native' | 'skb' | 'hw';

export function parseMode(value: unknown): Mode {
  if (!MODES.includes(value as Mode)) {
    throw new UsageError(`invalid mode '${String(value)}': expected native, skb or auto`);
  }
  return value as Mode;
}

const MODE_FLAG: Record<AttachedMode, number> = {
  native: XDP_FLAGS.DRV_MODE, skb: XDP_FLAGS.SKB_MODE, hw: XDP_FLAGS.HW_MODE,
};

interface XdpProgram {
  id: number;
  mode: AttachedMode;
}

export function attachedPrograms(ifindex: number): XdpProgram[] {
  const q = xdpQuery(ifindex);
  const progs: XdpProgram[] = [];
  if (q.drvProgId) progs.push({ id: q.drvProgId, mode: 'native' });
  if (q.skbProgId) progs.push({ id: q.skbProgId, mode: 'skb' });
  if (q.hwProgId) progs.push({ id: q.hwProgId, mode: 'hw' });
  return progs;
}

/** What is on an interface now, from the kernel and our pins. */
interface InterfaceState {
  iface: Iface;
  root: RootArray | null;
  /** Our root's attach mode on this device, null when not attached here. */
  ours: AttachedMode | null;
  foreign: XdpProgram[];
  /** Pins in its directory that are not a root of this device (a deleted
   *  device whose ifindex this one got): removed before attaching. */
  stale: boolean;
}

function inspect(name: string): InterfaceState {
  const iface = resolveIface(name);
  const root = RootArray.openPinned(ifaceDir(iface), name);
  const progs = attachedPrograms(iface.ifindex);
  const mine = progs.find((p) => root && p.id === root.rootId);
  return {
    iface, root, ours: mine?.mode ?? null,
    foreign: progs.filter((p) => p !== mine),
    stale: !!root && !mine,
  };
}

function describeForeign(p: XdpProgram): string {
  const info = describeProg(p.id);
  return `XDP program '${info ? progFullName(info) : '?'}' (id ${p.id}, ${p.mode} mode)`;
}

export interface AttachResult {
  ifname: string;
  mode: AttachedMode;
  changed: boolean;
  warnings: string[];
}

/** Attach the root to each interface, adopting a root already attached
 *  (a restarted service); the interfaces' checks come first, and what this
 *  call did is undone if one fails. Serialized per namespace. */
export function attach(ifnames: string[], mode: Mode, force = false): AttachResult[] {
  const states: InterfaceState[] = [];
  try {
    for (const name of ifnames) states.push(inspect(name));
    for (const s of states) {
      if (s.foreign.length && !force) {
        throw new XdplbError(
          `${s.iface.name} already has ${s.foreign.map(describeForeign).join(' and ')} attached: pass --force to replace it`,
        );
      }
      if (s.ours && mode !== 'auto' && s.ours !== mode) {
        throw new XdplbError(
          `${s.iface.name} already has the root array attached in ${s.ours} mode, not ${mode}: ` +
            `run xdp-root --detach --interface ${s.iface.name} first to change mode`,
        );
      }
    }
    ensureIfaceDir(states[0]?.iface ?? resolveIface('lo'));
    return withDirLock(namespaceDir(), () => Undo.run((undo) => states.map((s) => attachOne(s, mode, undo))));
  } finally {
    for (const s of states) s.root?.close();
  }
}

function attachOne(s: InterfaceState, mode: Mode, undo: Undo): AttachResult {
  const warnings = xdpTxWarnings(s.iface);
  if (s.ours) return { ifname: s.iface.name, mode: s.ours, changed: false, warnings };
  let root = s.root;
  if (s.stale) {
    // Pins of a device that is gone: its ifindex is this device's now. They
    // were never this device's chain, so they are not reinstalled on it.
    root!.close();
    s.root = root = null;
    removePins(ifaceDir(s.iface));
    warnings.push(`${s.iface.name}: removed the stale pins of a deleted device that had ifindex ${s.iface.ifindex}`);
  }
  const dir = ensureIfaceDir(s.iface);
  if (!root) {
    root = RootArray.load();
    s.root = root;
    root.pin(dir);
    undo.push(() => removePins(dir));
  }
  for (const p of s.foreign) {
    removeForeign(s.iface.ifindex, p);
    undo.push(() => restoreForeign(s.iface.ifindex, p));
  }
  const linkPin = join(dir, PIN.link);
  if (existsSync(linkPin)) removePins(linkPin);

  let used: AttachedMode = mode === 'skb' ? 'skb' : 'native';
  let linkFd: number;
  try {
    linkFd = xdpLinkCreate(root.rootFd, s.iface.ifindex, MODE_FLAG[used], `cannot attach the root to ${s.iface.name} in ${used} mode`);
  } catch (err) {
    if (!(err instanceof BpfError)) throw err;
    if (mode !== 'auto') throw explainAttach(err, s.iface, used);
    warnings.push(`${s.iface.name}: native XDP refused (${mtuReason(err, s.iface) ?? err.code}); attached in skb (generic) mode`);
    used = 'skb';
    try {
      linkFd = xdpLinkCreate(root.rootFd, s.iface.ifindex, MODE_FLAG.skb, `cannot attach the root to ${s.iface.name} in skb mode`);
    } catch (err2) {
      throw err2 instanceof BpfError ? explainAttach(err2, s.iface, 'skb') : err2;
    }
  }
  try {
    pinObject(linkFd, linkPin);
    undo.push(() => {
      const fd = openPinned(linkPin);
      if (fd !== null) withFd(fd, (l) => linkDetach(l, `cannot detach the root from ${s.iface.name}`));
      removePins(linkPin);
    });
  } catch (err) {
    linkDetach(linkFd, `cannot detach the root from ${s.iface.name}`);
    throw err;
  } finally {
    closeFd(linkFd);
  }
  return { ifname: s.iface.name, mode: used, changed: true, warnings };
}

/** Native XDP refused for the MTU says ERANGE: name the MTU. */
function mtuReason(err: BpfError, iface: Iface): string | null {
  return err.code === 'ERANGE'
    ? `the driver refuses native XDP at this MTU (${linkState(iface.name)?.mtu ?? '?'}; on a veth the peer's MTU counts) (ERANGE)`
    : null;
}

function explainAttach(err: BpfError, iface: Iface, mode: AttachedMode): Error {
  const reason = mode === 'native' ? mtuReason(err, iface) : null;
  if (!reason) return err;
  return new XdplbError(
    `cannot attach the root to ${iface.name} in native mode: ${reason}; lower the MTU (on veth: at most one page of frame, ` +
      'about 3500 bytes, unless multi-buffer XDP is on) or use --mode skb',
  );
}

/** XDP_TX on a veth is delivered only when the peer runs XDP (or has GRO
 *  on); otherwise the kernel counts xdp_tx errors while the slots' counters
 *  say TX. Said at attach time, when it can still be fixed, where the peer
 *  is in this namespace (elsewhere it cannot be seen from here). */
function xdpTxWarnings(iface: Iface): string[] {
  const peer = vethPeer(iface.name);
  if (!peer || attachedPrograms(peer.ifindex).length || peer.gro) return [];
  return [
    `${iface.name} is a veth whose peer ${peer.name} runs no XDP program and has GRO off: packets a slot sends back ` +
      `with XDP_TX are dropped by the kernel (ethtool -S ${iface.name} counts them as xdp_tx errors); ` +
      `attach an XDP program to ${peer.name} or turn GRO on there`,
  ];
}

/** Take a foreign program off a device: through its bpf_link when it has
 *  one (netlink cannot remove those), through netlink otherwise. */
function removeForeign(ifindex: number, p: XdpProgram): void {
  for (const id of linkIds()) {
    const fd = linkFdById(id);
    if (fd === null) continue;
    const owned = withFd(fd, (l) => {
      const info = linkInfo(l);
      if (info.type !== LINK_TYPE_XDP || info.ifindex !== ifindex || info.progId !== p.id) return false;
      linkDetach(l, `cannot detach the bpf_link (id ${id}) of program id ${p.id}`);
      return true;
    });
    if (owned) return;
  }
  xdpDetachNetlink(ifindex, MODE_FLAG[p.mode], `cannot detach program id ${p.id}`);
}

function restoreForeign(ifindex: number, p: XdpProgram): void {
  const fd = progFdById(p.id);
  if (fd !== null) withFd(fd, (f) => xdpAttachNetlink(ifindex, f, MODE_FLAG[p.mode], `cannot restore program id ${p.id}`));
}

export interface DetachResult {
  ifname: string;
  changed: boolean;
  /** Pins of devices of this name that are gone, removed by this call. */
  stale: number;
}

/** Remove the root and every pin of each interface: the live device of
 *  that name in this namespace, and pins left by devices of that name that
 *  are gone (detaching is how stale pins are cleaned up). A name with
 *  neither is unknown. */
export function detach(ifnames: string[]): DetachResult[] {
  const found = ifnames.map((name) => ({ name, ...findPinned(name) }));
  for (const f of found) {
    if (!f.live && !f.gone.length) resolveIface(f.name); // unknown here: says so
  }
  if (!found.some((f) => f.live || f.gone.length)) return found.map((f) => ({ ifname: f.name, changed: false, stale: 0 }));
  // Serialized with attaches (and a service's repairs) in this namespace.
  const results = withDirLock(namespaceDir(), () => found.map((f) => {
    for (const g of f.gone) removePins(g.dir);
    if (!f.live) return { ifname: f.name, changed: false, stale: f.gone.length };
    detachDir(f.live);
    return { ifname: f.name, changed: true, stale: f.gone.length };
  }));
  pruneNamespaceDir();
  return results;
}

function detachDir(p: PinnedIface): void {
  const linkFd = openPinned(join(p.dir, PIN.link));
  if (linkFd !== null) {
    withFd(linkFd, (l) => {
      if (linkInfo(l).ifindex === p.ifindex) linkDetach(l, `cannot detach the root from ${p.name}`);
    });
  } else {
    detachNetlinkRoot(p);
  }
  removePins(p.dir);
}

/** A root attached by netlink (no link pin) is removed only if it is ours. */
function detachNetlinkRoot(p: PinnedIface): void {
  let root: RootArray | null = null;
  try {
    root = RootArray.openPinned(p.dir, p.name);
  } catch {
    return; // incomplete or another ABI's pins: nothing of ours to take off
  }
  if (!root) return;
  try {
    for (const prog of attachedPrograms(p.ifindex)) {
      if (prog.id === root.rootId) xdpDetachNetlink(p.ifindex, MODE_FLAG[prog.mode], `cannot detach the root from ${p.name}`);
    }
  } finally {
    root.close();
  }
}
