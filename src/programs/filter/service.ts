// The filter as a service (xdp-filter run): its section of the config is the
// whole truth for the interfaces it runs on, drop lists included. Everything
// is checked before the first change (a list that would overflow changes
// nothing, on any interface).
import type { ServiceHandler } from '../contract.js';
import { placeProgram, removeProgram, findProgram, withRoot } from '../../root/place.js';
import { Undo } from '../../undo.js';
import { configure, syncDropLists, withFilters } from './control.js';
import { FILTER } from './layout.js';
import { FilterMaps } from './maps.js';
import { formatPrefix } from './prefix.js';
import type { FilterSettings } from './settings.js';

export const FILTER_SERVICE: ServiceHandler<FilterSettings> = {
  apply(ifaces, slot, s) {
    // Room on every interface first: the lists are the part that can be refused.
    for (const iface of ifaces) {
      const placed = withRoot(iface, (root) => findProgram(root, FILTER));
      if (!placed) continue;
      const maps = FilterMaps.open(iface);
      try {
        const listed = maps.list();
        const wanted = new Set(s.drop.map((d) => formatPrefix(d.prefix)));
        maps.checkRoom(s.drop.map((d) => d.prefix), iface.name, listed.filter((p) => !wanted.has(formatPrefix(p))));
      } finally {
        maps.close();
      }
    }
    return Undo.run((undo) => {
      const placed = placeProgram(FILTER, ifaces, slot, undo);
      const lines = placed.filter((p) => p.changed).map((p) => `${p.iface.name}: xdp_filter in slot ${p.slot}`);
      const before = withFilters(ifaces.map((i) => i.name), (maps) => maps.config());
      configure(placed, { frags_drop: s.frags_drop, ptb_max_pps: s.ptb_max_pps });
      undo.push(() => placed.forEach((p, i) => configure([p], before[i])));
      before.forEach((b, i) => {
        if (b.frags_drop !== s.frags_drop || b.ptb_max_pps !== s.ptb_max_pps) {
          lines.push(`${ifaces[i].name}: frags_drop ${s.frags_drop}, ptb_max_pps ${s.ptb_max_pps}`);
        }
      });
      lines.push(...syncDropLists(ifaces, s.drop));
      return lines;
    });
  },
  detach(ifaces) {
    removeProgram(FILTER, ifaces);
  },
  check(ifaces, slot, s) {
    const problems: string[] = [];
    for (const iface of ifaces) {
      const at = withRoot(iface, (root) => findProgram(root, FILTER));
      if (!at || at.slot !== slot) {
        problems.push(`${iface.name}: xdp_filter not in slot ${slot}`);
        continue;
      }
      const maps = FilterMaps.open(iface);
      try {
        const c = maps.config();
        if (c.frags_drop !== s.frags_drop || c.ptb_max_pps !== s.ptb_max_pps) problems.push(`${iface.name}: filter configuration differs`);
        const listed = new Set(maps.list().map((p) => `${formatPrefix(p)} ${p.tag}`));
        const want = new Set(s.drop.map((d) => `${formatPrefix(d.prefix)} ${d.tag}`));
        if (listed.size !== want.size || [...want].some((w) => !listed.has(w))) problems.push(`${iface.name}: drop lists differ`);
      } finally {
        maps.close();
      }
    }
    return problems;
  },
  status(ifaces) {
    return withFilters(ifaces.map((i) => i.name), (maps, iface) => {
      const c = maps.config();
      return `${iface.name}: frags_drop ${c.frags_drop ? 'on' : 'off'}, ptb_max_pps ${c.ptb_max_pps}, ${maps.list().length} prefixes dropped`;
    }).join('; ');
  },
};
