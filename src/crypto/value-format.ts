import { IntegrityError } from '../pkcs11/errors.js';

// Vault's barrier value layout, version 2: term (uint32 BE) ‖ 0x02 ‖ nonce (12) ‖ ciphertext ‖ tag (16).
export const VALUE_VERSION = 0x02;
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

export function parseValue(value: Buffer, path: string): ParsedValue {
  if (value.length < HEADER_BYTES + TAG_BYTES) throw new IntegrityError(`value at "${path}" is too short to be a barrier value`);
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
