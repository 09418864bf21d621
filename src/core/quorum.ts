import type * as openpgp from 'openpgp';
import { combine, ShamirError, split } from '../crypto/shamir.js';
import type { Token, TokenKey } from '../pkcs11/token.js';
import { InvalidRequestError } from './errors.js';
import { encryptShares } from './pgp.js';

/**
 * Combines shares into a working key in the token (one share is the key itself) and zeroes them.
 * Shares that cannot be combined call `onError` (callers reset progress there) and become a 400.
 */
export function rebuildKey(token: Token, shares: Buffer[], what: string, onError?: () => void): TokenKey {
  let bytes: Buffer;
  try {
    bytes = shares.length === 1 ? Buffer.from(shares[0]!) : combine(shares);
  } catch (err) {
    onError?.();
    if (err instanceof ShamirError) throw new InvalidRequestError(`${what} failed: the shares cannot be combined (${err.message}); progress has been reset`);
    throw err;
  } finally {
    for (const s of shares) s.fill(0);
  }
  return token.importKey(bytes);
}

/** Whether the shares rebuild the key `matches` accepts; the rebuilt key leaves the token at once. */
export function sharesRebuild(token: Token, shares: Buffer[], what: string, matches: (candidate: TokenKey) => boolean, onError?: () => void): boolean {
  const candidate = rebuildKey(token, shares, what, onError);
  try {
    return matches(candidate);
  } finally {
    token.releaseKey(candidate);
  }
}

/**
 * A new root key from the token's RNG, imported into the token, and its shares (the key itself
 * when there is one share). With PGP keys the shares come back encrypted and the plaintext ones
 * are zeroed. Used by init and by rekey.
 */
export async function newRootKey(
  token: Token,
  shares: number,
  threshold: number,
  pgpKeys: readonly openpgp.PublicKey[],
): Promise<{ rootKey: TokenKey; keys: Buffer[] }> {
  const rootBytes = token.random(32);
  const plain = shares === 1 ? [Buffer.from(rootBytes)] : split(rootBytes, shares, threshold);
  const rootKey = token.importKey(rootBytes);
  if (!pgpKeys.length) return { rootKey, keys: plain };
  try {
    return { rootKey, keys: await encryptShares(plain, pgpKeys) };
  } catch (err) {
    token.releaseKey(rootKey);
    throw err;
  } finally {
    for (const s of plain) s.fill(0);
  }
}
