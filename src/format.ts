// Output shared by every command: JSON with 64-bit counters as numbers,
// RFC 2822 times, and cli-table3 tables.
import Table from 'cli-table3';

/** `Wed, 03 May 2023 20:18:12 +0000` (UTC). */
export function formatTime(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

const BIG = '__xdplb_bigint__:';

/** JSON where bigints are written as plain numbers (no precision lost) and
 *  dates in the same form as the tables. */
export function toJson(value: unknown, indent = 2): string {
  const text = JSON.stringify(
    value,
    function (this: Record<string, unknown>, key, v) {
      const raw = this[key];
      if (raw instanceof Date) return formatTime(raw);
      return typeof v === 'bigint' ? `${BIG}${v}` : v;
    },
    indent,
  );
  return text.replace(new RegExp(`"${BIG}(-?\\d+)"`, 'g'), '$1');
}

export function table(head: string[], rows: Array<Array<string | number | bigint>>): string {
  const t = new Table({ head, style: { head: [], border: [], compact: true } });
  for (const row of rows) t.push(row.map(String));
  return t.toString();
}
