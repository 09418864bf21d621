/** Vault's two-column `Key / Value` table. */
export function table(rows: ReadonlyArray<readonly [string, unknown]>, headers: readonly [string, string] = ['Key', 'Value']): string {
  return columns(headers, rows);
}

/** Vault's table of any number of columns: headers, a row of dashes, then the rows, four spaces apart; an empty cell reads "n/a". */
export function columns(headers: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  const all = [headers, headers.map(dashes), ...rows.map((r) => r.map((cell) => show(cell) || 'n/a'))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((cell, i) => (cell ?? '').padEnd(widths[i]!)).join('    ').trimEnd()).join('\n');
}

/** A one-column list with a heading, as `vault kv list` prints. */
export function column(heading: string, items: readonly string[]): string {
  return [heading, dashes(heading), ...items].join('\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** `-format=json` or `-format=yaml` output of a value. */
export function formatted(format: 'json' | 'yaml', value: unknown): string {
  return format === 'json' ? json(value) : yaml(value);
}

/**
 * YAML for JSON values, as Vault prints `-format=yaml` (keys sorted, list items at their key's
 * indentation). Strings that could read as anything but a string are written double-quoted,
 * JSON's quoting being valid YAML.
 */
export function yaml(value: unknown): string {
  return yamlLines(value).join('\n');
}

function yamlLines(value: unknown): string[] {
  if (Array.isArray(value)) {
    if (value.length === 0) return ['[]'];
    return value.flatMap((item) => yamlLines(item).map((line, i) => (i === 0 ? `- ${line}` : `  ${line}`)));
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
    if (keys.length === 0) return ['{}'];
    return keys.flatMap((k) => {
      const v = (value as Record<string, unknown>)[k];
      const key = yamlScalar(k);
      if (!isCollection(v)) return [`${key}: ${yamlScalar(v)}`];
      const nested = yamlLines(v);
      return [`${key}:`, ...nested.map((line) => (Array.isArray(v) ? line : `  ${line}`))];
    });
  }
  return [yamlScalar(value)];
}

function isCollection(v: unknown): boolean {
  return v !== null && typeof v === 'object' && Object.keys(v).length > 0;
}

/** Words YAML 1.1 (which Vault's YAML library follows) reads as booleans or null. */
const YAML_WORDS = /^(y|n|yes|no|on|off|true|false|null|~)$/i;

function yamlScalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object') return '{}';
  if (typeof v !== 'string') return String(v);
  const plain = /^[A-Za-z_/][A-Za-z0-9_ ./@+-]*$/.test(v) && !v.endsWith(' ') && !YAML_WORDS.test(v);
  return plain ? v : JSON.stringify(v);
}

function dashes(s: string): string {
  return '-'.repeat(s.length);
}

/** A value as Vault's table shows it: Go's %v of the JSON value. */
export function show(v: unknown): string {
  if (v === undefined || v === null) return 'n/a';
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.entries(v as object).map(([k, x]) => `${k}:${show(x)}`).join(' ')}]`;
  return String(v);
}

/** Seconds as Vault's CLI shows a duration: "768h", "1h30m", "45s", "0s". */
export function duration(seconds: number): string {
  if (seconds <= 0) return '0s';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}
