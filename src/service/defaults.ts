/** Where the service's config lives unless --config says otherwise. Kept
 *  apart from config.ts so the commands' help does not load the parser. */
export const DEFAULT_CONFIG = '/etc/xdplb/xdplb.json';
