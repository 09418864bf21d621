import { randomFillSync } from 'node:crypto';
import { NONCE_BYTES } from './value-format.js';

/**
 * The single source of GCM nonces: 96 random bits per encryption from the OS CSPRNG
 * (NIST SP 800-38D §8.2.2, with rotation well before 2^32 encryptions per key). An HSM that
 * insists on generating IVs itself would plug in here.
 */
export function nextNonce(): Buffer {
  return randomFillSync(Buffer.allocUnsafe(NONCE_BYTES));
}
