import { InvalidRequestError } from './errors.js';

/** A request field that may be absent, a boolean, or the string "true"/"false" (as Vault's clients send). */
export function optionalBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new InvalidRequestError(`${field} must be true or false`);
}
