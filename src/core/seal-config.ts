import { InvalidRequestError } from './errors.js';

export const SEAL_CONFIG_PATH = 'core/seal-config';

/** Stored in plaintext (it must be readable while sealed): how many shares exist and how many unseal. */
export interface SealConfig {
  type: 'shamir';
  secret_shares: number;
  secret_threshold: number;
}

/** Vault's rules for share counts: 1..255 shares, threshold ≤ shares, threshold > 1 when shares > 1. */
export function validateShareCounts(shares: number, threshold: number): void {
  if (!Number.isInteger(shares) || shares < 1) throw new InvalidRequestError('secret shares must be at least one');
  if (shares > 255) throw new InvalidRequestError('secret shares must be at most 255');
  if (!Number.isInteger(threshold) || threshold < 1) throw new InvalidRequestError('secret threshold must be at least one');
  if (threshold > shares) throw new InvalidRequestError('secret threshold cannot be larger than secret shares');
  if (shares > 1 && threshold === 1) throw new InvalidRequestError('secret threshold must be greater than one for multiple shares');
}

/** With PGP keys, one key per share. */
export function validatePgpKeyCount(pgpKeys: number, shares: number): void {
  if (pgpKeys > 0 && pgpKeys !== shares) {
    throw new InvalidRequestError(`count mismatch between number of provided PGP keys (${pgpKeys}) and number of shares (${shares})`);
  }
}

export function parseSealConfig(raw: Buffer): SealConfig {
  const c = JSON.parse(raw.toString('utf8')) as SealConfig;
  if (c.type !== 'shamir') throw new Error(`unsupported seal type ${String(c.type)} in ${SEAL_CONFIG_PATH}`);
  return c;
}

/** Bytes per share: the 32-byte root key itself when there is one share, else 32 bytes plus the x-coordinate. */
export function shareLength(config: SealConfig): number {
  return config.secret_shares === 1 ? 32 : 33;
}
