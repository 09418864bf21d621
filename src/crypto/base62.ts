import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `length` characters from [0-9A-Za-z], each equally likely (for tokens, accessors, one-time pads). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      // Rejection sampling: 248 = 4 × 62, so every character keeps the same chance.
      if (b < 248 && out.length < length) out += BASE62[b % 62];
    }
  }
  return out;
}
