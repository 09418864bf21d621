import { describe, expect, it } from 'vitest';
import { nextNonce } from '../src/crypto/nonce.js';

describe('nonce source', () => {
  it('hands out 96-bit nonces that never repeat, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const n = nextNonce();
      expect(n.length).toBe(12);
      seen.add(n.toString('hex'));
    }
    expect(seen.size).toBe(5000);
  });

  it('keeps earlier nonces intact when the pool is refilled', () => {
    const first = nextNonce();
    const copy = Buffer.from(first);
    for (let i = 0; i < 3000; i++) nextNonce();
    expect(first.equals(copy)).toBe(true);
  });
});
