import type * as openpgp from 'openpgp';
import { InvalidRequestError } from './errors.js';

// openpgp is loaded on first use: most starts never touch PGP, and it adds about 60 ms to each.
const load = () => import('openpgp');

/**
 * Reads the public keys operators hand in (`pgp_keys`): Vault takes base64 of the binary key;
 * ASCII-armored keys are accepted too.
 */
export async function readPublicKeys(encoded: readonly string[]): Promise<openpgp.PublicKey[]> {
  const keys: openpgp.PublicKey[] = [];
  if (!encoded.length) return keys;
  const openpgp = await load();
  for (const [i, text] of encoded.entries()) {
    try {
      const trimmed = text.trim();
      const key = trimmed.startsWith('-----BEGIN')
        ? await openpgp.readKey({ armoredKey: trimmed })
        : await openpgp.readKey({ binaryKey: Buffer.from(trimmed, 'base64') });
      keys.push(key.toPublic());
    } catch (err) {
      throw new InvalidRequestError(`pgp_keys[${i}] is not a valid PGP public key: ${(err as Error).message}`);
    }
  }
  return keys;
}

export function fingerprintOf(key: openpgp.PublicKey): string {
  return key.getFingerprint().toLowerCase();
}

/** Encrypts each share (as the hex text operators paste into unseal) to the key at the same position. */
export async function encryptShares(shares: readonly Buffer[], keys: readonly openpgp.PublicKey[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const openpgp = await load();
  for (const [i, share] of shares.entries()) {
    const message = await openpgp.createMessage({ text: share.toString('hex') });
    const encrypted = await openpgp.encrypt({ message, encryptionKeys: keys[i]!, format: 'binary' });
    out.push(Buffer.from(encrypted));
  }
  return out;
}
