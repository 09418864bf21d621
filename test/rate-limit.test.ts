import { describe, expect, it } from 'vitest';
import { ClientRateLimiter } from '../src/http/rate-limit.js';

describe('quorum endpoint rate limit', () => {
  it('lets a burst through, slows a flood to the refill rate, and never locks out', () => {
    let now = 0;
    const limiter = new ClientRateLimiter(5, 2, () => now);
    for (let i = 0; i < 5; i++) expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBeGreaterThan(0);
    expect(limiter.take('b')).toBe(0);
    now += 500;
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBeGreaterThan(0);
    now += 60_000;
    for (let i = 0; i < 5; i++) expect(limiter.take('a')).toBe(0);
  });
});
