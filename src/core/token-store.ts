import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { PermissionDeniedError } from './errors.js';

const SALT_PATH = 'sys/token/salt';
const ID_PREFIX = 'sys/token/id/';

export interface TokenEntry {
  /** HMAC of the token under the per-install salt; the token itself is never stored. */
  hash: string;
  accessor: string;
  policies: string[];
  display_name: string;
  creation_time: number;
}

/**
 * Client tokens, stored through the barrier only as a keyed hash (HMAC-SHA256 with a salt that
 * itself lives in the barrier), so neither storage nor a backup reveals a usable token.
 */
export class TokenStore {
  private salt: Buffer | undefined;

  constructor(private readonly barrier: SecurityBarrier) {}

  /** The writes that create the salt and a root token at init, and the token to hand out. */
  static initialRoot(): { token: string; ops: BarrierOp[] } {
    const salt = randomBytes(32);
    const token = newTokenId();
    const entry: TokenEntry = {
      hash: hmac(salt, token),
      accessor: randomAccessor(),
      policies: ['root'],
      display_name: 'root',
      creation_time: Math.floor(Date.now() / 1000),
    };
    return {
      token,
      ops: [
        { kind: 'put', path: SALT_PATH, value: salt },
        { kind: 'put', path: ID_PREFIX + entry.hash, value: Buffer.from(JSON.stringify(entry)) },
      ],
    };
  }

  /** The entry for a client token; PermissionDeniedError when it is missing or unknown. */
  async lookup(token: string | undefined): Promise<TokenEntry> {
    if (!token) throw new PermissionDeniedError('no client token given (set X-Vault-Token)');
    const hash = hmac(await this.loadSalt(), token);
    const raw = await this.barrier.get(ID_PREFIX + hash);
    if (!raw) throw new PermissionDeniedError('invalid token');
    const entry = JSON.parse(raw.toString('utf8')) as TokenEntry;
    if (!timingSafeEqual(Buffer.from(entry.hash), Buffer.from(hash))) throw new PermissionDeniedError('invalid token');
    return entry;
  }

  /** Forgets the cached salt (on seal). */
  clear(): void {
    this.salt?.fill(0);
    this.salt = undefined;
  }

  private async loadSalt(): Promise<Buffer> {
    if (!this.salt) {
      const salt = await this.barrier.get(SALT_PATH);
      if (!salt) throw new Error('token store salt missing from storage');
      this.salt = salt;
    }
    return this.salt;
  }
}

function hmac(salt: Buffer, token: string): string {
  return createHmac('sha256', salt).update(token).digest('hex');
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function base62(bytes: number): string {
  let out = '';
  while (out.length < bytes) {
    for (const b of randomBytes(bytes * 2)) {
      // Rejection sampling keeps every character equally likely.
      if (b < 248 && out.length < bytes) out += BASE62[b % 62];
    }
  }
  return out;
}

/** Vault's service-token shape: `hvs.` and 24 random base62 characters. */
export function newTokenId(): string {
  return `hvs.${base62(24)}`;
}

function randomAccessor(): string {
  return base62(24);
}

