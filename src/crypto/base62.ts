import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** 248 = 4 × 62: bytes from here up are rejected, so every character keeps the same chance. */
const UNBIASED_LIMIT = 248;

/**
 * `length` characters from [0-9A-Za-z], each equally likely (for tokens, accessors, one-time
 * pads). `source` gives random bytes; tests pass a fixed sequence to check the mapping exactly.
 */
export function randomBase62(length: number, source: (n: number) => Buffer = randomBytes): string {
  let out = '';
  while (out.length < length) {
    for (const b of source(length * 2)) {
      if (b < UNBIASED_LIMIT && out.length < length) out += BASE62[b % 62];
    }
  }
  return out;
}
