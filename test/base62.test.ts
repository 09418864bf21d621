import { describe, expect, it } from 'vitest';
import { randomBase62 } from '../src/crypto/base62.js';

/** A byte source that hands out the given bytes in order, as many as asked each time. */
function fixedBytes(bytes: number[]): (n: number) => Buffer {
  let at = 0;
  return (n) => {
    const out = Buffer.from(bytes.slice(at, at + n));
    at += n;
    return out;
  };
}

describe('randomBase62', () => {
  it('maps every byte value below 248 to a character, each character exactly four times, and rejects the rest', () => {
    // Highest first, so a generator that kept 248..255 would use them before the low bytes.
    const all = Array.from({ length: 256 }, (_, b) => 255 - b);
    const text = randomBase62(248, fixedBytes([...all, ...all]));
    const counts = new Map<string, number>();
    for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    // b % 62 without rejection would give '0'..'7' a fifth byte (248..255) and push the rest along.
    for (const [c, n] of counts) expect(n, c).toBe(4);
    // 247 is the first byte kept: 247 % 62 = 61, 'z'.
    expect(text.slice(0, 3)).toBe('zyx');
  });

  it('asks for more bytes when too many were rejected', () => {
    const text = randomBase62(3, fixedBytes([255, 250, 248, 249, 252, 253, 1, 2, 3]));
    expect(text).toBe('123');
  });

  it('gives exactly the asked length, odd and tiny ones included', () => {
    for (const n of [0, 1, 2, 25]) expect(randomBase62(n)).toHaveLength(n);
  });

  it('gives the asked length from [0-9A-Za-z] with the system RNG, every character in use', () => {
    const text = randomBase62(62 * 200);
    expect(text).toHaveLength(62 * 200);
    expect(text).toMatch(/^[0-9A-Za-z]+$/);
    expect(new Set(text).size).toBe(62);
  });
});
