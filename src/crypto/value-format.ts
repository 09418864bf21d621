import { IntegrityError } from '../pkcs11/errors.js';

// Vault's barrier value layout, version 2: term (uint32 BE) ‖ 0x02 ‖ nonce (12) ‖ ciphertext ‖ tag (16).
// keyward's version 3, for an IV the token chose at another length (Thales Luna's 16 bytes):
// term (uint32 BE) ‖ 0x03 ‖ IV length (1) ‖ IV ‖ ciphertext ‖ tag (16).
export const VALUE_VERSION = 0x02;
const VALUE_VERSION_ANY_IV = 0x03;
export const TERM_BYTES = 4;
export const NONCE_BYTES = 12;
export const HEADER_BYTES = TERM_BYTES + 1 + NONCE_BYTES;
export const TAG_BYTES = 16;

export interface ParsedValue {
  term: number;
  nonce: Buffer;
  /** ciphertext ‖ tag */
  sealed: Buffer;
}

/** Allocates a value buffer with the header filled in; the caller encrypts into `value.subarray(HEADER_BYTES)`. */
export function allocateValue(term: number, nonce: Buffer, plaintextLength: number): Buffer {
  const value = Buffer.allocUnsafe(HEADER_BYTES + plaintextLength + TAG_BYTES);
  value.writeUInt32BE(term, 0);
  value[TERM_BYTES] = VALUE_VERSION;
  nonce.copy(value, TERM_BYTES + 1);
  return value;
}

/** A value from an encryption whose IV the token chose: Vault's layout for a 12-byte IV, version 3 for another length. */
export function formatValue(term: number, iv: Buffer, sealed: Buffer): Buffer {
  if (iv.length === NONCE_BYTES) {
    const value = allocateValue(term, iv, sealed.length - TAG_BYTES);
    sealed.copy(value, HEADER_BYTES);
    return value;
  }
  if (iv.length === 0 || iv.length > 255) throw new Error(`cannot store a ${iv.length}-byte GCM IV`);
  const head = Buffer.alloc(TERM_BYTES + 2);
  head.writeUInt32BE(term, 0);
  head[TERM_BYTES] = VALUE_VERSION_ANY_IV;
  head[TERM_BYTES + 1] = iv.length;
  return Buffer.concat([head, iv, sealed]);
}

export function parseValue(value: Buffer, path: string): ParsedValue {
  if (value.length < HEADER_BYTES + TAG_BYTES) throw new IntegrityError(`value at "${path}" is too short to be a barrier value`);
  if (value[TERM_BYTES] === VALUE_VERSION_ANY_IV) {
    const ivAt = TERM_BYTES + 2;
    const sealedAt = ivAt + value[TERM_BYTES + 1]!;
    if (value[TERM_BYTES + 1] === 0 || value.length < sealedAt + TAG_BYTES) throw new IntegrityError(`value at "${path}" is too short for its IV`);
    return { term: value.readUInt32BE(0), nonce: value.subarray(ivAt, sealedAt), sealed: value.subarray(sealedAt) };
  }
  if (value[TERM_BYTES] !== VALUE_VERSION) {
    throw new IntegrityError(`value at "${path}" has unknown format version ${value[TERM_BYTES]}`);
  }
  return {
    term: value.readUInt32BE(0),
    nonce: value.subarray(TERM_BYTES + 1, HEADER_BYTES),
    sealed: value.subarray(HEADER_BYTES),
  };
}

/** The term a stored value was written under, read from its first four bytes. */
export function termOf(value: Buffer): number {
  return value.readUInt32BE(0);
}
