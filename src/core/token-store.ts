import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { randomBase62 } from '../crypto/base62.js';
import { InvalidRequestError, PermissionDeniedError } from './errors.js';

const SALT_PATH = 'sys/token/salt';
const ID_PREFIX = 'sys/token/id/';
const ACCESSOR_PREFIX = 'sys/token/accessor/';
const PARENT_PREFIX = 'sys/token/parent/';

/** Vault's default and maximum lease for service tokens: 768h. */
export const DEFAULT_TOKEN_TTL = 768 * 3600;

export interface TokenEntry {
  /** HMAC of the token under the per-install salt; the token itself is never stored. */
  hash: string;
  accessor: string;
  policies: string[];
  display_name: string;
  meta: Record<string, string> | null;
  /** Seconds since the epoch. */
  creation_time: number;
  /** The TTL asked for at creation or the last renewal (seconds; 0 = never expires). */
  ttl: number;
  explicit_max_ttl: number;
  /** Milliseconds since the epoch; 0 = never. */
  expire_time: number;
  /** Uses left; 0 = unlimited. */
  num_uses: number;
  renewable: boolean;
  /** The parent's accessor; '' for an orphan. */
  parent: string;
  path: string;
}

export interface CreateTokenRequest {
  policies?: string[];
  ttl?: number;
  explicit_max_ttl?: number;
  num_uses?: number;
  renewable?: boolean;
  no_parent?: boolean;
  no_default_policy?: boolean;
  display_name?: string;
  meta?: Record<string, string>;
}

/**
 * Client tokens, stored through the barrier only as a keyed hash (HMAC-SHA256 with a salt that
 * itself lives in the barrier), with accessors and parent links so revoking a parent revokes its
 * children. Callers serialize changes to one token (the HTTP layer runs them one at a time).
 */
export class TokenStore {
  private salt: Buffer | undefined;
  /**
   * Entries of unlimited-use tokens by hash, so a request need not read and decrypt its token.
   * On the node that writes, every change and revocation here updates or drops the entry; a
   * standby drops them all when the active node reports a token change.
   */
  private readonly cache = new Map<string, TokenEntry>();
  /** Bumped by every change, so a read that raced a revocation is never cached. */
  private changes = 0;

  constructor(
    private readonly barrier: SecurityBarrier,
    private readonly now: () => number = Date.now,
  ) {}

  /** The writes that create the salt and a root token at init, and the token to hand out. */
  static initialRoot(): { token: string; ops: BarrierOp[] } {
    const salt = randomBytes(32);
    const token = newTokenId();
    const entry = rootEntry(hmac(salt, token));
    return {
      token,
      ops: [
        { kind: 'put', path: SALT_PATH, value: salt },
        ...entryOps(entry),
      ],
    };
  }

  /** The entry for a client token; PermissionDeniedError when it is missing, unknown or expired. */
  lookup(token: string | undefined): Promise<TokenEntry> {
    if (!token) return Promise.reject(new PermissionDeniedError('no client token given (set X-Vault-Token)'));
    // The hot path, without a promise chain: a cached entry, found by its hash (so no comparison
    // of secrets is left to make), that has not expired.
    const cached = this.salt && this.cache.get(hmac(this.salt, token));
    if (cached && !(cached.expire_time && cached.expire_time <= this.now())) return Promise.resolve(cached);
    return this.lookupStored(token);
  }

  private async lookupStored(token: string): Promise<TokenEntry> {
    const hash = hmac(await this.loadSalt(), token);
    let entry = this.cache.get(hash);
    if (!entry) {
      const before = this.changes;
      entry = await this.read(hash);
      if (entry && entry.num_uses === 0 && this.changes === before && this.cache.size < 10_000) this.cache.set(hash, entry);
    }
    if (!entry || !timingSafeEqual(Buffer.from(entry.hash), Buffer.from(hash))) throw new PermissionDeniedError('invalid token');
    if (entry.expire_time && entry.expire_time <= this.now()) {
      await this.revoke(entry, false);
      throw new PermissionDeniedError('invalid token (expired)');
    }
    return entry;
  }

  /** Counts one use of a limited-use token; its last use is allowed and revokes it. */
  async use(entry: TokenEntry): Promise<void> {
    if (entry.num_uses === 0) return;
    if (entry.num_uses === 1) await this.revoke(entry, false);
    else await this.write({ ...entry, num_uses: entry.num_uses - 1 });
  }

  async lookupAccessor(accessor: string): Promise<TokenEntry> {
    const hash = await this.barrier.get(ACCESSOR_PREFIX + checkAccessor(accessor));
    const entry = hash && (await this.read(hash.toString('utf8')));
    if (!entry) throw new InvalidRequestError('invalid accessor');
    return entry;
  }

  async listAccessors(): Promise<string[]> {
    return this.barrier.list(ACCESSOR_PREFIX);
  }

  /** Mints a new root token (generate-root): an orphan with the root policy that never expires. */
  async createRoot(): Promise<string> {
    const token = newTokenId();
    await this.barrier.transaction(entryOps({ ...rootEntry(hmac(await this.loadSalt(), token)), path: 'auth/token/generate-root' }));
    return token;
  }

  /** Creates a child of `parent` (or an orphan), enforcing Vault's policy-subset rule. */
  async create(parent: TokenEntry, req: CreateTokenRequest, path: string): Promise<{ token: string; entry: TokenEntry }> {
    const parentIsRoot = parent.policies.includes('root');
    let policies = [...new Set(req.policies ?? parent.policies.filter((p) => p !== 'root' || parentIsRoot))];
    if (!parentIsRoot) {
      const extra = policies.filter((p) => p !== 'default' && !parent.policies.includes(p));
      if (extra.length) throw new PermissionDeniedError(`child policies must be subset of parent (not held: ${extra.join(', ')})`);
    }
    if (policies.includes('root') && !parentIsRoot) throw new PermissionDeniedError('only a root token may create a root token');
    if (!req.no_default_policy && !policies.includes('root') && !policies.includes('default')) policies.push('default');
    if (req.no_default_policy) policies = policies.filter((p) => p !== 'default');
    if (policies.length === 0) throw new InvalidRequestError('a token needs at least one policy');

    const explicitMax = req.explicit_max_ttl ?? 0;
    let ttl = req.ttl ?? (policies.includes('root') ? 0 : DEFAULT_TOKEN_TTL);
    if (explicitMax && (ttl === 0 || ttl > explicitMax)) ttl = explicitMax;
    if (req.num_uses !== undefined && (!Number.isInteger(req.num_uses) || req.num_uses < 0)) {
      throw new InvalidRequestError('num_uses must be a non-negative integer');
    }
    const token = newTokenId();
    const nowMs = this.now();
    const entry: TokenEntry = {
      hash: hmac(await this.loadSalt(), token),
      accessor: randomAccessor(),
      policies,
      display_name: req.display_name ? `token-${req.display_name}` : 'token',
      meta: req.meta ?? null,
      creation_time: Math.floor(nowMs / 1000),
      ttl,
      explicit_max_ttl: explicitMax,
      expire_time: ttl ? nowMs + ttl * 1000 : 0,
      num_uses: req.num_uses ?? 0,
      renewable: req.renewable ?? true,
      parent: req.no_parent ? '' : parent.accessor,
      path,
    };
    const ops = entryOps(entry);
    if (entry.parent) ops.push({ kind: 'put', path: `${PARENT_PREFIX}${entry.parent}/${entry.accessor}`, value: Buffer.alloc(0) });
    await this.barrier.transaction(ops);
    return { token, entry };
  }

  /** Extends a renewable token's life by `increment` (or its TTL), never past its explicit max. */
  async renew(entry: TokenEntry, increment?: number): Promise<TokenEntry> {
    if (!entry.renewable) throw new InvalidRequestError('token is not renewable');
    if (entry.expire_time === 0) return entry;
    const ttl = increment && increment > 0 ? increment : entry.ttl;
    let expire = this.now() + ttl * 1000;
    if (entry.explicit_max_ttl) expire = Math.min(expire, (entry.creation_time + entry.explicit_max_ttl) * 1000);
    const renewed = { ...entry, ttl, expire_time: expire };
    await this.write(renewed);
    return renewed;
  }

  /** Revokes a token and, unless `orphanChildren`, every descendant; with it, the children become orphans. */
  async revoke(entry: TokenEntry, orphanChildren: boolean): Promise<void> {
    const children = await this.barrier.list(`${PARENT_PREFIX}${entry.accessor}/`);
    for (const childAccessor of children) {
      const hash = await this.barrier.get(ACCESSOR_PREFIX + childAccessor);
      const child = hash && (await this.read(hash.toString('utf8')));
      if (child) {
        if (orphanChildren) await this.write({ ...child, parent: '' });
        else await this.revoke(child, false);
      }
      await this.barrier.delete(`${PARENT_PREFIX}${entry.accessor}/${childAccessor}`);
    }
    const ops: BarrierOp[] = [
      { kind: 'delete', path: ID_PREFIX + entry.hash },
      { kind: 'delete', path: ACCESSOR_PREFIX + entry.accessor },
    ];
    if (entry.parent) ops.push({ kind: 'delete', path: `${PARENT_PREFIX}${entry.parent}/${entry.accessor}` });
    this.changes++;
    this.cache.delete(entry.hash);
    try {
      await this.barrier.transaction(ops);
    } finally {
      this.changes++;
      this.cache.delete(entry.hash);
    }
  }

  /** Remaining lifetime in seconds (0 for tokens that never expire). */
  remainingTtl(entry: TokenEntry): number {
    return entry.expire_time ? Math.max(0, Math.round((entry.expire_time - this.now()) / 1000)) : 0;
  }

  /** The keyed hash an auditor can search for (the same HMAC the store keys tokens by). */
  async hashOf(token: string): Promise<string> {
    return hmac(await this.loadSalt(), token);
  }

  /** Forgets cached entries (a standby, when another node changed tokens). */
  forgetEntries(): void {
    this.changes++;
    this.cache.clear();
  }

  /** Forgets the cached salt and entries (on seal). */
  clear(): void {
    this.salt?.fill(0);
    this.salt = undefined;
    this.cache.clear();
  }

  private async read(hash: string): Promise<TokenEntry | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    const raw = await this.barrier.get(ID_PREFIX + hash);
    return raw && (JSON.parse(raw.toString('utf8')) as TokenEntry);
  }

  private async write(entry: TokenEntry): Promise<void> {
    this.changes++;
    this.cache.delete(entry.hash);
    try {
      await this.barrier.put(ID_PREFIX + entry.hash, Buffer.from(JSON.stringify(entry)));
    } finally {
      this.changes++;
      this.cache.delete(entry.hash);
    }
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

function rootEntry(hash: string): TokenEntry {
  return {
    hash,
    accessor: randomAccessor(),
    policies: ['root'],
    display_name: 'root',
    meta: null,
    creation_time: Math.floor(Date.now() / 1000),
    ttl: 0,
    explicit_max_ttl: 0,
    expire_time: 0,
    num_uses: 0,
    renewable: false,
    parent: '',
    path: 'auth/token/root',
  };
}

function entryOps(entry: TokenEntry): BarrierOp[] {
  return [
    { kind: 'put', path: ID_PREFIX + entry.hash, value: Buffer.from(JSON.stringify(entry)) },
    { kind: 'put', path: ACCESSOR_PREFIX + entry.accessor, value: Buffer.from(entry.hash) },
  ];
}

function checkAccessor(accessor: string): string {
  if (!/^[0-9A-Za-z]{1,64}$/.test(accessor)) throw new InvalidRequestError('invalid accessor');
  return accessor;
}

function hmac(salt: Buffer, token: string): string {
  return createHmac('sha256', salt).update(token).digest('hex');
}

/** Vault's service-token shape: `hvs.` and 24 random base62 characters. */
export function newTokenId(): string {
  return `hvs.${randomBase62(24)}`;
}

function randomAccessor(): string {
  return randomBase62(24);
}
