// Interface names as operators give them: checked and listed.
import { UsageError } from '../errors.js';

const IFNAMSIZ = 16;

/** Check an interface name's syntax (the kernel's dev_valid_name rules). */
export function validateInterfaceName(name: string): string {
  if (
    name.length === 0 ||
    Buffer.byteLength(name) >= IFNAMSIZ ||
    name === '.' || name === '..' ||
    /[\/:\s]/.test(name)
  ) {
    throw new UsageError(
      `invalid interface name '${name}': expected 1 to ${IFNAMSIZ - 1} characters without '/', ':' or spaces`,
    );
  }
  return name;
}

/** Split `eth0,eth1` into checked, de-duplicated names, in order. */
export function parseInterfaceList(list: string): string[] {
  const names = list.split(',').map((n) => n.trim());
  if (names.some((n) => n === '')) {
    throw new UsageError(`invalid interface list '${list}': expected names separated by commas, like eth0,eth1`);
  }
  return [...new Set(names.map(validateInterfaceName))];
}
