import { InvalidRequestError } from './errors.js';

/** A request field that may be absent, a boolean, or the string "true"/"false" (as Vault's clients send). */
export function optionalBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new InvalidRequestError(`${field} must be true or false`);
}

/** What Vault's clients send for a field they leave alone: absent, null, "", false, [] or {}. */
export function isUnset(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

/** A list of strings as Vault's clients send it: an array, or one comma-separated string; entries trimmed, empty ones dropped. */
export function parseStringList(v: unknown, field: string): string[] {
  const items = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : undefined;
  if (!items || items.some((item) => typeof item !== 'string')) {
    throw new InvalidRequestError(`${field} must be a list of strings (an array or a comma-separated string)`);
  }
  return (items as string[]).map((item) => item.trim()).filter((item) => item !== '');
}

/**
 * The entries of a list field as Vault's clients send it (an array, or one comma-separated
 * string), trimmed, empty ones skipped, in order; `what` names the entries ("policy names") in the
 * error for a value that is no list. Lazy, so a caller's own check of an entry comes before any
 * error about a later one.
 */
export function* listFieldEntries(v: unknown, field: string, what: string): Generator<string, void, undefined> {
  let items: unknown[];
  if (typeof v === 'string') items = v.split(',');
  else if (Array.isArray(v)) items = v;
  else throw new InvalidRequestError(`${field} must be a list of ${what} (an array or a comma-separated string)`);
  for (const item of items) {
    if (typeof item !== 'string') throw new InvalidRequestError(`${field} must contain only strings`);
    const text = item.trim();
    if (text !== '') yield text;
  }
}
