// Attaching and detaching the root array on interfaces. Every request is
// checked for all interfaces before the kernel is touched, and a failure
// part-way undoes what this request did.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfError, XDP_FLAGS, closeFd, linkDetach, linkFdById, linkIds, linkInfo, openPinned, pinObject,
  progFdById, withFd, xdpAttachNetlink, xdpDetachNetlink, xdpLinkCreate, xdpQuery, LINK_TYPE_XDP,
} from '../libbpf/index.js';
import { UsageError, XdplbError } from '../errors.js';
import { interfaceIndex, validateInterfaceName } from '../net/interface.js';
import { PIN, interfaceDir } from './layout.js';
import { RootArray, describeProg, removePins } from './array.js';
import { progFullName } from '../libbpf/index.js';

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

/** What is on an interface now, from the kernel and our pins. */
export interface InterfaceState {
  ifname: string;
  ifindex: number;
  root: RootArray | null;
  /** Our root's attach mode on this device, null when not attached here. */
  ours: AttachedMode | null;
  foreign: XdpProgram[];
}

export function attachedPrograms(ifindex: number): XdpProgram[] {
  const q = xdpQuery(ifindex);
  const progs: XdpProgram[] = [];
  if (q.drvProgId) progs.push({ id: q.drvProgId, mode: 'native' });
  if (q.skbProgId) progs.push({ id: q.skbProgId, mode: 'skb' });
  if (q.hwProgId) progs.push({ id: q.hwProgId, mode: 'hw' });
  return progs;
}

export function inspect(ifname: string): InterfaceState {
  const ifindex = interfaceIndex(ifname);
  const root = RootArray.openPinned(interfaceDir(ifname));
  const progs = attachedPrograms(ifindex);
  const mine = progs.find((p) => root && p.id === root.rootId);
  return {
    ifname, ifindex, root, ours: mine?.mode ?? null,
    foreign: progs.filter((p) => p !== mine),
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

export function attach(ifnames: string[], mode: Mode, force = false): AttachResult[] {
  const states: InterfaceState[] = [];
  try {
    for (const name of ifnames) states.push(inspect(name));
    for (const s of states) {
      if (s.foreign.length && !force) {
        throw new XdplbError(
          `${s.ifname} already has ${s.foreign.map(describeForeign).join(' and ')} attached: ` +
            'pass --force to replace it',
        );
      }
      if (s.ours && mode !== 'auto' && s.ours !== mode) {
        throw new XdplbError(
          `${s.ifname} already has the root array attached in ${s.ours} mode, not ${mode}: ` +
            `run xdp-root --detach --interface ${s.ifname} first to change mode`,
        );
      }
    }
    const done: Array<() => void> = [];
    const results: AttachResult[] = [];
    try {
      for (const s of states) results.push(attachOne(s, mode, done));
    } catch (err) {
      for (const undo of done.reverse()) {
        try { undo(); } catch { /* keep undoing; the first error is the one to report */ }
      }
      throw err;
    }
    return results;
  } finally {
    for (const s of states) s.root?.close();
  }
}

function attachOne(s: InterfaceState, mode: Mode, undo: Array<() => void>): AttachResult {
  if (s.ours) return { ifname: s.ifname, mode: s.ours, changed: false, warnings: [] };
  const dir = interfaceDir(s.ifname);
  const warnings: string[] = [];
  let root = s.root;
  if (!root) {
    // Fresh: load and pin. Otherwise adopt what is pinned (slots and
    // counters carry on), e.g. after the device was deleted and re-created.
    root = RootArray.load();
    s.root = root;
    root.pin(dir);
    undo.push(() => removePins(dir));
  }
  for (const p of s.foreign) {
    removeForeign(s.ifindex, p);
    undo.push(() => restoreForeign(s.ifindex, p));
  }
  const staleLink = join(dir, PIN.link);
  if (existsSync(staleLink)) removePins(staleLink);

  let used: AttachedMode = mode === 'skb' ? 'skb' : 'native';
  let linkFd: number;
  try {
    linkFd = xdpLinkCreate(root.rootFd, s.ifindex, MODE_FLAG[used], `cannot attach the root to ${s.ifname} in ${used} mode`);
  } catch (err) {
    if (mode !== 'auto' || !(err instanceof BpfError)) throw err;
    warnings.push(`${s.ifname}: native XDP is not available (${err.code}); attached in skb (generic) mode`);
    used = 'skb';
    linkFd = xdpLinkCreate(root.rootFd, s.ifindex, MODE_FLAG.skb, `cannot attach the root to ${s.ifname} in skb mode`);
  }
  try {
    pinObject(linkFd, staleLink);
    undo.push(() => {
      const fd = openPinned(staleLink);
      if (fd !== null) withFd(fd, (l) => linkDetach(l, `cannot detach the root from ${s.ifname}`));
      removePins(staleLink);
    });
  } catch (err) {
    linkDetach(linkFd, `cannot detach the root from ${s.ifname}`);
    throw err;
  } finally {
    closeFd(linkFd);
  }
  return { ifname: s.ifname, mode: used, changed: true, warnings };
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
}

/** Remove the root and every pin of the interface. The device need not
 *  exist any more: detaching is also how stale pins are cleaned up. */
export function detach(ifnames: string[]): DetachResult[] {
  ifnames.forEach(validateInterfaceName);
  return ifnames.map((ifname) => {
    const dir = interfaceDir(ifname);
    if (!existsSync(dir)) return { ifname, changed: false };
    const linkFd = openPinned(join(dir, PIN.link));
    if (linkFd !== null) {
      withFd(linkFd, (l) => {
        if (linkInfo(l).ifindex) linkDetach(l, `cannot detach the root from ${ifname}`);
      });
    } else {
      detachNetlinkRoot(ifname, dir);
    }
    removePins(dir);
    return { ifname, changed: true };
  });
}

/** A root attached by netlink (no link pin) is removed only if it is ours. */
function detachNetlinkRoot(ifname: string, dir: string): void {
  let root: RootArray | null = null;
  try {
    root = RootArray.openPinned(dir);
  } catch {
    return; // incomplete pins: nothing of ours can be attached
  }
  if (!root) return;
  try {
    const ifindex = interfaceIndex(ifname);
    for (const p of attachedPrograms(ifindex)) {
      if (p.id === root.rootId) xdpDetachNetlink(ifindex, MODE_FLAG[p.mode], `cannot detach the root from ${ifname}`);
    }
  } catch (err) {
    if (!(err instanceof XdplbError)) throw err; // device gone: nothing attached
  } finally {
    root.close();
  }
}
