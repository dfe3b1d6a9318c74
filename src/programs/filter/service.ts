// The filter as a service (xdp-filter run): its section of the config is the
// whole truth for the interfaces it runs on, drop lists included.
import type { SectionHandler } from '../../service/section-service.js';
import { attachFilter, detachFilter, withFilters } from './control.js';
import { formatPrefix } from './prefix.js';
import type { FilterSettings } from './settings.js';

export const FILTER_SERVICE: SectionHandler<FilterSettings> = {
  section: 'filter',
  apply(ifnames, slot, s, log) {
    attachFilter(ifnames, slot, { frags_drop: s.frags_drop, ptb_max_pps: s.ptb_max_pps });
    const wanted = new Map(s.drop.map((d) => [formatPrefix(d.prefix), d]));
    withFilters(ifnames, (maps, ifname) => {
      const listed = maps.list();
      const stale = listed.filter((p) => wanted.get(formatPrefix(p))?.tag !== p.tag);
      const have = new Set(listed.filter((p) => !stale.includes(p)).map((p) => formatPrefix(p)));
      const add = s.drop.filter((d) => !have.has(formatPrefix(d.prefix)));
      if (stale.length) maps.remove(stale);
      if (add.length) {
        maps.checkRoom(add.map((d) => d.prefix), ifname);
        maps.addAll(add);
      }
      if (stale.length || add.length) log(`${ifname}: drop lists: ${add.length} listed, ${stale.length} removed`);
    });
  },
  detach(ifnames) {
    detachFilter(ifnames);
  },
  status(ifnames) {
    return withFilters(ifnames, (maps, ifname) => {
      const c = maps.config();
      return `${ifname}: frags_drop ${c.frags_drop ? 'on' : 'off'}, ptb_max_pps ${c.ptb_max_pps}, ${maps.list().length} prefixes dropped`;
    }).join('; ');
  },
};
