import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../src/core/errors.js';
import { parseSealConfig, type SealConfig, shareLength, validatePgpKeyCount, validateShareCounts } from '../src/core/seal-config.js';

/** The message validateShareCounts gives for (shares, threshold), or 'ok'. */
function verdict(shares: number, threshold: number): string {
  try {
    validateShareCounts(shares, threshold);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidRequestError);
    return (err as Error).message;
  }
}

describe('seal config', () => {
  it("accepts exactly Vault's share layouts: 1/1, and t of n with 2 ≤ t ≤ n ≤ 255", () => {
    // Every layout around the boundaries: small counts, and thresholds next to n.
    const ns = [0, 1, 2, 3, 4, 5, 254, 255, 256];
    const accepted: string[] = [];
    const expected: string[] = [];
    for (const n of ns) {
      for (const t of new Set([0, 1, 2, 3, 4, 5, 6, n - 1, n, n + 1])) {
        if (verdict(n, t) === 'ok') accepted.push(`${t}/${n}`);
        if ((n === 1 && t === 1) || (t >= 2 && t <= n && n <= 255)) expected.push(`${t}/${n}`);
      }
    }
    expect(accepted).toEqual(expected);
    expect(accepted).toContain('255/255');
  });

  it('says which share count rule a layout breaks', () => {
    expect(verdict(0, 1)).toBe('secret shares must be at least one');
    expect(verdict(-3, 1)).toBe('secret shares must be at least one');
    expect(verdict(2.5, 2)).toBe('secret shares must be at least one');
    expect(verdict(Number.NaN, 2)).toBe('secret shares must be at least one');
    expect(verdict(256, 2)).toBe('secret shares must be at most 255');
    expect(verdict(3, 0)).toBe('secret threshold must be at least one');
    expect(verdict(3, 1.5)).toBe('secret threshold must be at least one');
    expect(verdict(3, 4)).toBe('secret threshold cannot be larger than secret shares');
    expect(verdict(1, 2)).toBe('secret threshold cannot be larger than secret shares');
    expect(verdict(2, 1)).toBe('secret threshold must be greater than one for multiple shares');
  });

  it('wants one PGP key per share, or none', () => {
    expect(() => validatePgpKeyCount(0, 5)).not.toThrow();
    expect(() => validatePgpKeyCount(5, 5)).not.toThrow();
    expect(() => validatePgpKeyCount(4, 5)).toThrow(
      new InvalidRequestError('count mismatch between number of provided PGP keys (4) and number of shares (5)'),
    );
    expect(() => validatePgpKeyCount(6, 5)).toThrow(/provided PGP keys \(6\) and number of shares \(5\)/);
  });

  it('reads the stored JSON and refuses another seal type', () => {
    const stored: SealConfig = { type: 'shamir', secret_shares: 5, secret_threshold: 3 };
    expect(parseSealConfig(Buffer.from(JSON.stringify(stored)))).toEqual(stored);
    expect(() => parseSealConfig(Buffer.from('{"type":"transit","secret_shares":1}'))).toThrow(
      'unsupported seal type transit in core/seal-config',
    );
    expect(() => parseSealConfig(Buffer.from('{}'))).toThrow('unsupported seal type undefined in core/seal-config');
  });

  it('sizes shares: the bare 32-byte key for one share, 33 bytes (with the x-coordinate) otherwise', () => {
    const config = (n: number): SealConfig => ({ type: 'shamir', secret_shares: n, secret_threshold: n === 1 ? 1 : 2 });
    expect(shareLength(config(1))).toBe(32);
    expect(shareLength(config(2))).toBe(33);
    expect(shareLength(config(255))).toBe(33);
  });
});
