// The filter's configuration: what the operator asks for, validated, and its
// one-value encoding in the config map (struct filter_config).
import { UsageError } from '../../errors.js';
import { CONFIG_LAYOUT, TAG_MAX_BYTES } from './layout.js';

export interface FilterConfig {
  frags_drop: boolean;
  /** Packet Too Big replies per second, all CPUs together; 0 sends none. */
  ptb_max_pps: number;
}

const PPS_MAX = 0xffffffff;

export function parsePps(value: unknown): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) > PPS_MAX) {
    throw new UsageError(`invalid --ptb-max-pps '${text}': expected a whole number from 0 to ${PPS_MAX} (0 sends no replies)`);
  }
  return Number(text);
}

export function parseTag(tag: string): string {
  if (Buffer.byteLength(tag) > TAG_MAX_BYTES || tag.includes('\0')) {
    throw new UsageError(`invalid tag '${tag}': expected at most ${TAG_MAX_BYTES} bytes of text`);
  }
  return tag;
}

/** A new config map holds zeros: a fresh filter drops no fragments and
 *  sends no replies until told to. */
export function encodeConfig(cfg: FilterConfig): Buffer {
  const b = Buffer.alloc(CONFIG_LAYOUT.size);
  b.writeUInt32LE(cfg.frags_drop ? 1 : 0, CONFIG_LAYOUT.frags_drop);
  b.writeUInt32LE(cfg.ptb_max_pps, CONFIG_LAYOUT.ptb_max_pps);
  return b;
}

export function decodeConfig(b: Buffer): FilterConfig {
  return { frags_drop: b.readUInt32LE(CONFIG_LAYOUT.frags_drop) !== 0, ptb_max_pps: b.readUInt32LE(CONFIG_LAYOUT.ptb_max_pps) };
}
