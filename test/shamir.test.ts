import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { div, inverse, mul } from '../src/crypto/gf256.js';
import { combine, ShamirError, split } from '../src/crypto/shamir.js';

describe('GF(2^8)', () => {
  it('multiplies in the AES field', () => {
    expect(mul(3, 7)).toBe(9);
    expect(mul(7, 7)).toBe(21);
    expect(mul(0x57, 0x83)).toBe(0xc1); // FIPS-197 §4.2
    expect(mul(0x57, 0x13)).toBe(0xfe);
    expect(mul(0, 0xff)).toBe(0);
  });

  it('has an inverse for every non-zero element', () => {
    for (let a = 1; a < 256; a++) expect(mul(a, inverse(a))).toBe(1);
    expect(div(0, 9)).toBe(0);
    expect(() => div(1, 0)).toThrow(RangeError);
  });

  it('agrees with shift-and-add multiplication on all 65536 products', () => {
    // The textbook (branching) method: the reference the constant-time one must match.
    const slowMul = (a: number, b: number) => {
      let p = 0;
      for (; b; b >>= 1) {
        if (b & 1) p ^= a;
        a <<= 1;
        if (a & 0x100) a ^= 0x11b;
      }
      return p;
    };
    // FIPS-197's powers of the generator 0x03 check the reference itself.
    const powers = [1];
    for (let i = 1; i < 16; i++) powers.push(slowMul(powers[i - 1]!, 3));
    expect(Buffer.from(powers).toString('hex')).toBe('0103050f113355ff1a2e7296a1f81335');
    const wrong: string[] = [];
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) if (mul(a, b) !== slowMul(a, b)) wrong.push(`${a}*${b}`);
    expect(wrong).toEqual([]);
  });

  it('inverts and divides exactly: 0x53⁻¹ = 0xCA, 0⁻¹ = 0, (a·b)/b = a', () => {
    expect(inverse(0x53)).toBe(0xca); // FIPS-197 §5.1.1
    expect(inverse(1)).toBe(1);
    expect(inverse(0)).toBe(0);
    const wrong: string[] = [];
    for (let a = 0; a < 256; a++) for (let b = 1; b < 256; b++) if (div(mul(a, b), b) !== a) wrong.push(`${a}*${b}/${b}`);
    expect(wrong).toEqual([]);
    expect(() => div(0, 0)).toThrow('division by zero in GF(2^8)');
  });
});

const parts = fc.integer({ min: 2, max: 12 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 2, max: n })));

describe('shamir', () => {
  it('any t of n shares rebuild the secret', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 48 }), parts, fc.infiniteStream(fc.nat()), (secret, [n, t], picks) => {
        const shares = split(secret, n, t);
        const pool = [...shares];
        const chosen: Buffer[] = [];
        const it = picks[Symbol.iterator]();
        while (chosen.length < t) chosen.push(pool.splice(it.next().value % pool.length, 1)[0]!);
        expect(Buffer.from(combine(chosen))).toEqual(Buffer.from(secret));
      }),
      { numRuns: 300 },
    );
  });

  it('t-1 shares do not rebuild a 32-byte secret', () => {
    fc.assert(
      fc.property(parts.filter(([, t]) => t > 2), ([n, t]) => {
        const secret = randomBytes(32);
        const shares = split(secret, n, t);
        expect(combine(shares.slice(0, t - 1)).equals(secret)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('lays shares out as Vault does: y bytes then a distinct x in 1..255', () => {
    const shares = split(randomBytes(32), 255, 3);
    const xs = shares.map((s) => {
      expect(s.length).toBe(33);
      return s[32]!;
    });
    expect(new Set(xs).size).toBe(255);
    expect(Math.min(...xs)).toBe(1);
    expect(Math.max(...xs)).toBe(255);
  });

  it('rejects a duplicated share', () => {
    fc.assert(
      fc.property(parts, ([n, t]) => {
        const shares = split(randomBytes(32), n, t);
        expect(() => combine([...shares.slice(0, t - 1), shares[0]!])).toThrow(/duplicate part/);
      }),
      { numRuns: 100 },
    );
  });

  it("enforces Vault's limits with clear errors", () => {
    const s = randomBytes(32);
    expect(() => split(s, 256, 3)).toThrow('parts cannot exceed 255');
    expect(() => split(s, 3, 4)).toThrow('parts cannot be less than threshold');
    expect(() => split(s, 3, 1)).toThrow('threshold must be at least 2');
    expect(() => split(Buffer.alloc(0), 3, 2)).toThrow('cannot split an empty secret');
    expect(() => combine([Buffer.alloc(33)])).toThrow('less than two parts');
    expect(() => combine([Buffer.alloc(1, 1), Buffer.alloc(1, 2)])).toThrow('at least two bytes');
    expect(() => combine([Buffer.alloc(33, 1), Buffer.alloc(32, 2)])).toThrow('same length');
    expect(() => split(s, 3, 2.5)).toThrow(ShamirError);
  });

  it('gives each refusal its own message', () => {
    const s = randomBytes(32);
    expect(() => split(s, 2.5, 2)).toThrow(new ShamirError('parts and threshold must be integers'));
    expect(() => split(s, 3, 2.5)).toThrow(new ShamirError('parts and threshold must be integers'));
    expect(() => combine([Buffer.alloc(33)])).toThrow(new ShamirError('less than two parts cannot be used to reconstruct the secret'));
    expect(() => combine([])).toThrow(ShamirError);
    expect(new ShamirError('x').name).toBe('ShamirError');
  });

  it('draws the x-coordinates at random, not in order', () => {
    const firstXs = new Set(Array.from({ length: 40 }, () => split(Buffer.from([1]), 2, 2)[0]![1]));
    // 40 draws from 1..255 give well over 20 distinct values (a fixed order would give one).
    expect(firstXs.size).toBeGreaterThan(20);
  });

  it('works at the limits: 255 of 255 shares, and one-byte secrets (two-byte shares)', () => {
    const secret = randomBytes(4);
    const all = split(secret, 255, 255);
    expect(combine(all)).toEqual(secret);
    expect(combine(all.slice(1))).not.toEqual(secret);
    const tiny = split(Buffer.from([0xa5]), 2, 2);
    expect(tiny.map((t) => t.length)).toEqual([2, 2]);
    expect(combine(tiny)).toEqual(Buffer.from([0xa5]));
  });

  it('combines hand-made shares of f(x) = 0x42 + 7x, and refuses x = 0', () => {
    // f(1) = 0x42 ^ 7 = 0x45; f(2) = 0x42 ^ (7·2) = 0x42 ^ 0x0e = 0x4c; f(3) = 0x42 ^ (7·3) = 0x42 ^ 9 = 0x4b.
    expect(combine([Buffer.from([0x45, 1]), Buffer.from([0x4c, 2])])).toEqual(Buffer.from([0x42]));
    expect(combine([Buffer.from([0x4b, 3]), Buffer.from([0x45, 1])])).toEqual(Buffer.from([0x42]));
    expect(() => combine([Buffer.from([0x42, 0]), Buffer.from([0x45, 1])])).toThrow(
      new ShamirError('a part has x-coordinate 0, which no valid part has'),
    );
  });
});
