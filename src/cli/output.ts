/** Vault's two-column `Key / Value` table. */
export function table(rows: ReadonlyArray<readonly [string, unknown]>, headers: readonly [string, string] = ['Key', 'Value']): string {
  const all: Array<readonly [string, string]> = [headers, [dashes(headers[0]), dashes(headers[1])], ...rows.map(([k, v]) => [k, show(v)] as const)];
  const width = Math.max(...all.map(([k]) => k.length));
  return all.map(([k, v]) => `${k.padEnd(width)}    ${v}`.trimEnd()).join('\n');
}

/** A one-column list with a heading, as `vault kv list` prints. */
export function column(heading: string, items: readonly string[]): string {
  return [heading, dashes(heading), ...items].join('\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

function dashes(s: string): string {
  return '-'.repeat(s.length);
}

function show(v: unknown): string {
  if (v === undefined || v === null) return 'n/a';
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.entries(v as object).map(([k, x]) => `${k}:${show(x)}`).join(' ')}]`;
  return String(v);
}
