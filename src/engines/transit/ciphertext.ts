import { InvalidRequestError } from '../../core/errors.js';

/** `vault:v<version>:<base64>`, the form of Vault's transit ciphertexts, signatures and HMACs. */
export function encodeVersioned(version: number, bytes: Buffer, encoding: 'base64' | 'base64url' = 'base64'): string {
  return `vault:v${version}:${bytes.toString(encoding)}`;
}

/** The version and bytes of a `vault:v<n>:...` value; `what` names it in errors ("ciphertext", "signature"). */
export function decodeVersioned(value: unknown, what: string, encoding: 'base64' | 'base64url' = 'base64'): { version: number; bytes: Buffer } {
  if (typeof value !== 'string' || value === '') throw new InvalidRequestError(`missing ${what}`);
  const m = /^vault:v([1-9]\d{0,8}):(.*)$/s.exec(value);
  if (!m) throw new InvalidRequestError(`invalid ${what}: it must look like "vault:v1:..." as returned by keyward`);
  const body = m[2]!;
  const pattern = encoding === 'base64' ? /^[A-Za-z0-9+/]*={0,2}$/ : /^[A-Za-z0-9_-]*$/;
  if (!pattern.test(body)) throw new InvalidRequestError(`invalid ${what}: the part after the version is not ${encoding}`);
  return { version: Number(m[1]), bytes: Buffer.from(body, encoding) };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** An absent field's bytes: shared, and never written to (an empty buffer has nothing to zero). */
const EMPTY = Buffer.alloc(0);

/** A base64 request field (plaintext, input, associated_data, context): its bytes. */
export function base64Field(v: unknown, field: string, required: boolean): Buffer {
  if (v === undefined || v === null || v === '') {
    if (required) throw new InvalidRequestError(`missing ${field}`);
    return EMPTY;
  }
  if (typeof v !== 'string') throw new InvalidRequestError(`${field} must be base64-encoded`);
  // Line breaks and spaces are allowed, as Go's decoder (Vault's) skips newlines; they are rare, so looked for only on a mismatch.
  const text = BASE64.test(v) ? v : v.replace(/\s/g, '');
  if (text.length % 4 === 1 || (text !== v && !BASE64.test(text))) throw new InvalidRequestError(`${field} must be base64-encoded`);
  return Buffer.from(text, 'base64');
}
