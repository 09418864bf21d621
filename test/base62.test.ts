import { describe, expect, it } from 'vitest';
import { randomBase62 } from '../src/crypto/base62.js';

describe('randomBase62', () => {
  it('gives the asked length from [0-9A-Za-z], every character in use', () => {
    const text = randomBase62(62 * 200);
    expect(text).toHaveLength(62 * 200);
    expect(text).toMatch(/^[0-9A-Za-z]+$/);
    const counts = new Map<string, number>();
    for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    // 200 expected per character; a biased generator (e.g. b % 62 without rejection) skews the first 8 by about +25 %.
    for (const n of counts.values()) expect(n).toBeLessThan(320);
  });
});
