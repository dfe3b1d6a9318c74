// A root array pinned and attached for real (skb mode) to a veth of a
// network namespace made for the test and entered by this thread, in a pin
// tree of the test's own: what the subprograms' kernel tests place their
// programs on. close() leaves the namespace and removes everything.
import { rmSync } from 'node:fs';
import { RootArray } from '../../src/root/array.js';
import { attach } from '../../src/root/attach.js';
import { ifaceDir, pinRoot, resolveIface, type Iface } from '../../src/root/pins.js';
import { enterLabNamespace } from './lb.js';
import { uniqueTag } from './netns.js';

export interface PinnedRoot {
  iface: Iface;
  root: RootArray;
  ns: string;
  close(): void;
}

export function pinnedRoot(): PinnedRoot {
  process.env.XDPLB_PIN_ROOT = `/sys/fs/bpf/xdplb-kt-${process.pid}`;
  const tag = uniqueTag();
  const ns = `xkt-${tag}`;
  const name = `kt${tag}`;
  const leave = enterLabNamespace(ns, [
    ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`],
    // No IPv6 link-local addresses, so the kernel sends nothing of its own
    // (DAD, MLD, router solicitations) that the attached root would count.
    ['link', 'set', name, 'addrgenmode', 'none'],
    ['link', 'set', `${name}p`, 'addrgenmode', 'none'],
    ['link', 'set', name, 'up'],
    ['link', 'set', `${name}p`, 'up'],
  ]);
  try {
    attach([name], 'skb');
    const iface = resolveIface(name);
    const root = RootArray.openPinned(ifaceDir(iface), name)!;
    return {
      iface, root, ns,
      close() {
        root.close();
        leave();
        rmSync(pinRoot(), { recursive: true, force: true });
        delete process.env.XDPLB_PIN_ROOT;
      },
    };
  } catch (err) {
    leave();
    throw err;
  }
}
