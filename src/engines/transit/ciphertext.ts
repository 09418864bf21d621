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

/** A base64 request field (plaintext, input, associated_data, context): its bytes. */
export function base64Field(v: unknown, field: string, required: boolean): Buffer {
  if (v === undefined || v === null || v === '') {
    if (required) throw new InvalidRequestError(`missing ${field}`);
    return Buffer.alloc(0);
  }
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v.replace(/\s/g, '')) || v.replace(/\s/g, '').length % 4 === 1) {
    throw new InvalidRequestError(`${field} must be base64-encoded`);
  }
  return Buffer.from(v, 'base64');
}
