import { timingSafeEqual } from 'node:crypto';
import { InvalidRequestError } from './errors.js';

/** Decodes a share typed by an operator: hex (Vault's `keys`) or base64 (`keys_base64`). */
export function decodeShare(text: unknown, expectedBytes: number): Buffer {
  if (typeof text !== 'string' || text.length === 0) throw new InvalidRequestError("'key' must be a non-empty string");
  const trimmed = text.trim();
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]+$/.test(trimmed) && trimmed.length % 2 === 0) bytes = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) && trimmed.length % 4 === 0) bytes = Buffer.from(trimmed, 'base64');
  if (!bytes) throw new InvalidRequestError("'key' must be a valid hex or base64 string");
  if (bytes.length !== expectedBytes) {
    const got = bytes.length;
    bytes.fill(0);
    throw new InvalidRequestError(`'key' decodes to ${got} bytes, but a share of this cluster is ${expectedBytes} bytes`);
  }
  return bytes;
}

/** A share that may belong to either of two layouts whose shares differ in length (a single share is the bare 32-byte key). */
export function decodeShareOfAny(text: unknown, expectedBytes: readonly number[]): Buffer {
  const [first, ...others] = [...new Set(expectedBytes)];
  try {
    return decodeShare(text, first!);
  } catch (err) {
    for (const bytes of others) {
      try {
        return decodeShare(text, bytes);
      } catch {
        // The next length, or the first error.
      }
    }
    throw err;
  }
}

/**
 * Shares handed in one per request towards a threshold (unseal, and later rekey and
 * generate-root). A share given twice is not counted twice; the comparison is constant-time.
 */
export class ShareCollector {
  private shares: Buffer[] = [];

  get progress(): number {
    return this.shares.length;
  }

  /** Adds a share; false when the same share was already given. */
  add(share: Buffer): boolean {
    for (const s of this.shares) {
      if (s.length === share.length && timingSafeEqual(s, share)) {
        share.fill(0);
        return false;
      }
    }
    this.shares.push(share);
    return true;
  }

  /** Copies of the first `count` shares, kept here too (an unseal tries them against more than one layout); the caller zeroes them. */
  copies(count: number): Buffer[] {
    return this.shares.slice(0, count).map((share) => Buffer.from(share));
  }

  /** Hands the shares over and forgets them; the caller zeroes them when done. */
  take(): Buffer[] {
    const out = this.shares;
    this.shares = [];
    return out;
  }

  reset(): void {
    for (const s of this.shares) s.fill(0);
    this.shares = [];
  }
}
