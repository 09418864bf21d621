import { randomFillSync } from 'node:crypto';
import { NONCE_BYTES } from './value-format.js';

// Nonces are cut from a block of CSPRNG output filled in one call: a randomFillSync per
// encryption costs more than the rest of the barrier's own work. Each slice is handed out once.
const POOL_BYTES = NONCE_BYTES * 1024;
let pool = Buffer.alloc(0);
let offset = 0;

/**
 * The single source of GCM nonces: 96 random bits per encryption from the OS CSPRNG
 * (NIST SP 800-38D §8.2.2, with rotation well before 2^32 encryptions per key). An HSM that
 * insists on generating IVs itself would plug in here.
 */
export function nextNonce(): Buffer {
  if (offset + NONCE_BYTES > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    offset = 0;
  }
  const nonce = pool.subarray(offset, offset + NONCE_BYTES);
  offset += NONCE_BYTES;
  return nonce;
}
