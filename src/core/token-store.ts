import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { randomBase62 } from '../crypto/base62.js';
import { cidrContains } from '../auth/cidr.js';
import type { LoginAuth } from '../auth/method.js';
import { KeyedMutex } from '../locks/mutex.js';
import { InvalidRequestError, PermissionDeniedError } from './errors.js';
import { RESPONSE_WRAPPING_POLICY } from './policy-store.js';
import { policyName } from './names.js';
import type { MountTtls } from './path-table.js';
import { type TokenRole, TokenRoleStore } from './token-roles.js';

const SALT_PATH = 'sys/token/salt';
const ID_PREFIX = 'sys/token/id/';
const ACCESSOR_PREFIX = 'sys/token/accessor/';
const PARENT_PREFIX = 'sys/token/parent/';

/** Vault's system default and maximum lease (`default_lease_ttl`, `max_lease_ttl`): 768h. */
export const DEFAULT_TOKEN_TTL = 768 * 3600;

/** The system's token lifetimes, in seconds: the TTL a token gets when none is asked, and the most any non-root token gets. */
export interface TokenTtls {
  defaultTtl: number;
  maxTtl: number;
}

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
  /** Seconds; a periodic token's every renewal sets its TTL to this. Absent (0) in entries stored before periods. */
  period?: number;
  /** The token is refused from any address outside these blocks. Absent: usable from anywhere. */
  bound_cidrs?: string[];
  /** Seconds from creation: the most a login token may live (its role's or mount's maximum). Absent: the system maximum from now. */
  max_ttl?: number;
}

/** What a new token is made of; its hash, accessor, creation time and TTL come with issuing it. */
type NewToken = Omit<TokenEntry, 'hash' | 'accessor' | 'creation_time' | 'ttl'>;

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
  /** Seconds: a periodic token (its TTL, and every renewal, is this). */
  period?: number;
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
  /** Serializes the uses of each limited-use token, so exactly `num_uses` requests get through. */
  private readonly useLocks = new KeyedMutex();
  /** Token roles (auth/token/roles), for auth/token/create/<role>. */
  readonly roles: TokenRoleStore;
  /** Called once a token is revoked, to delete what was kept for it (its cubbyhole); set by the core. */
  onRevoked: ((entry: TokenEntry) => Promise<void>) | undefined;

  constructor(
    private readonly barrier: SecurityBarrier,
    private readonly now: () => number = Date.now,
    private readonly ttls: TokenTtls = { defaultTtl: DEFAULT_TOKEN_TTL, maxTtl: DEFAULT_TOKEN_TTL },
  ) {
    if (ttls.defaultTtl > ttls.maxTtl) throw new Error(`the default token TTL (${ttls.defaultTtl}s) exceeds the maximum (${ttls.maxTtl}s)`);
    this.roles = new TokenRoleStore(barrier);
  }

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

  /** Refuses a token bound to CIDR blocks when it is used from outside them (its uses are not spent). */
  checkAddress(entry: TokenEntry, remoteAddress: string): void {
    if (entry.bound_cidrs?.length && !cidrContains(entry.bound_cidrs, remoteAddress)) {
      throw new PermissionDeniedError(`permission denied: the token is bound to CIDR blocks that do not include the request's address ${remoteAddress}`);
    }
  }

  /**
   * Counts one use of a limited-use token; its last use is allowed and revokes it. The count is
   * read again under the token's lock, so concurrent requests cannot spend the same use twice.
   */
  async use(entry: TokenEntry): Promise<void> {
    if (entry.num_uses === 0) return;
    await this.useLocks.run(entry.hash, async () => {
      const current = await this.read(entry.hash);
      if (!current) throw new PermissionDeniedError('invalid token (its uses are spent)');
      if (current.num_uses <= 1) await this.revoke(current, false);
      else await this.write({ ...current, num_uses: current.num_uses - 1 });
    });
  }

  async lookupAccessor(accessor: string): Promise<TokenEntry> {
    const entry = await this.entryOfAccessor(checkAccessor(accessor));
    if (!entry) throw new InvalidRequestError('invalid accessor');
    return entry;
  }

  async listAccessors(): Promise<string[]> {
    return this.barrier.list(ACCESSOR_PREFIX);
  }

  /**
   * Stores a new root token (generate-root): an orphan with the root policy that never expires.
   * generate-root passes a token from newTokenId() that it has already encoded for its reply.
   */
  async createRoot(token: string = newTokenId()): Promise<string> {
    await this.barrier.transaction(entryOps({ ...rootEntry(hmac(await this.loadSalt(), token)), path: 'auth/token/generate-root' }));
    return token;
  }

  /**
   * Creates a child of `parent` (or an orphan), enforcing Vault's rules: policies a subset of the
   * parent's, no children from a use-limited token, and a life within the system maximum, the
   * child's own `explicit_max_ttl` and, for a child, what remains of its parent's life. With a
   * token role (auth/token/create/<role>), the role's rules apply as Vault applies them: its
   * allowed policies instead of the parent's, none of its disallowed ones, its orphan, renewable,
   * period, explicit max and CIDR bounds.
   */
  async create(parent: TokenEntry, req: CreateTokenRequest, path: string, role?: TokenRole): Promise<{ token: string; entry: TokenEntry }> {
    if (parent.num_uses > 0) throw new InvalidRequestError('a token with a use limit cannot create tokens');
    const policies = role ? rolePolicies(role, parent, req) : childPolicies(parent, req);
    if (policies.length === 0) throw new InvalidRequestError('a token needs at least one policy');
    if (req.num_uses !== undefined && (!Number.isInteger(req.num_uses) || req.num_uses < 0)) {
      throw new InvalidRequestError('num_uses must be a non-negative integer');
    }
    const orphan = req.no_parent === true || role?.orphan === true;
    const period = role?.token_period || req.period || 0;
    const explicitMax = Math.min(...[req.explicit_max_ttl ?? 0, role?.token_explicit_max_ttl ?? 0].filter((t) => t > 0), Infinity);

    const nowMs = this.now();
    // A TTL of 0 asks for the default; only a root token may have none, and never as a child of a mortal parent.
    const ttl = period || req.ttl;
    let expireTime = ttl ? nowMs + ttl * 1000 : policies.includes('root') ? 0 : nowMs + this.ttls.defaultTtl * 1000;
    const bound = this.lifeBound(nowMs, explicitMax === Infinity ? 0 : explicitMax, policies, orphan ? undefined : parent);
    if (bound && (expireTime === 0 || expireTime > bound)) expireTime = bound;
    return this.issue(nowMs, {
      policies,
      display_name: req.display_name ? `token-${req.display_name}` : 'token',
      meta: req.meta ?? null,
      explicit_max_ttl: explicitMax === Infinity ? 0 : explicitMax,
      expire_time: expireTime,
      num_uses: req.num_uses ?? 0,
      renewable: (req.renewable ?? true) && (role?.renewable ?? true),
      parent: orphan ? '' : parent.accessor,
      path,
      period,
      bound_cidrs: role?.token_bound_cidrs,
    });
  }

  /**
   * Issues the token of a successful login at `path` ("auth/userpass/login/alice"): an orphan with
   * the method's policies (and `default` unless it says not), its TTL the login's, else the
   * mount's default, else the system's, bounded by the login's maximum, else the mount's, else the
   * system's, and by its explicit max. A periodic token's TTL is its period, renewed to the period
   * for ever (only an explicit max ends it).
   */
  async createForLogin(auth: LoginAuth, path: string, mount: MountTtls): Promise<{ token: string; entry: TokenEntry }> {
    const policies = loginPolicies(auth);
    const mountDefault = mount.default_lease_ttl || this.ttls.defaultTtl;
    const mountMax = Math.min(mount.max_lease_ttl || this.ttls.maxTtl, this.ttls.maxTtl);
    const maxTtl = auth.maxTtl ? Math.min(auth.maxTtl, mountMax) : mountMax;
    const period = auth.period ?? 0;
    const explicitMax = auth.explicitMaxTtl ?? 0;
    const numUses = auth.numUses ?? 0;
    if (!Number.isInteger(numUses) || numUses < 0) throw new InvalidRequestError('num_uses must be a non-negative integer');

    const nowMs = this.now();
    let expireTime = nowMs + (period || Math.min(auth.ttl || mountDefault, maxTtl)) * 1000;
    const bound = this.lifeBound(nowMs, explicitMax, policies, undefined, nowMs, period ? 0 : maxTtl);
    if (bound && expireTime > bound) expireTime = bound;
    return this.issue(nowMs, {
      policies,
      display_name: auth.displayName,
      meta: { ...auth.metadata },
      explicit_max_ttl: explicitMax,
      expire_time: expireTime,
      num_uses: numUses,
      renewable: auth.renewable ?? true,
      parent: '',
      path,
      period,
      max_ttl: period ? 0 : maxTtl,
      bound_cidrs: auth.boundCidrs,
    });
  }

  /**
   * Revokes every token issued at a path under `prefix` ("auth/approle/": the logins of a mount
   * being disabled), with their descendants. Returns how many were revoked.
   */
  async revokeIssuedUnder(prefix: string): Promise<number> {
    let revoked = 0;
    for (const accessor of await this.listAccessors()) {
      const entry = await this.entryOfAccessor(accessor);
      if (!entry?.path.startsWith(prefix)) continue;
      await this.revoke(entry, false);
      revoked++;
    }
    return revoked;
  }

  /**
   * Sets a renewable token's life to `increment` (or its TTL) from now, as Vault does (which may
   * shorten it), never past the system maximum, its explicit max, or its parent's expiry; its
   * descendants are cut to the new expiry, so none outlives it. A token whose parent is gone or
   * expired is revoked.
   */
  async renew(entry: TokenEntry, increment?: number): Promise<TokenEntry> {
    if (!entry.renewable) throw new InvalidRequestError('token is not renewable');
    if (entry.expire_time === 0) return entry;
    const nowMs = this.now();
    let parent: TokenEntry | undefined;
    if (entry.parent) {
      parent = await this.entryOfAccessor(entry.parent);
      if (!parent || (parent.expire_time && parent.expire_time <= nowMs)) {
        await this.revoke(entry, false);
        throw new PermissionDeniedError('invalid token (its parent has expired or was revoked)');
      }
    }
    // A periodic token renews to its period, whatever the increment asked (as Vault does).
    const ttl = entry.period ? entry.period : increment && increment > 0 ? increment : entry.ttl;
    let expire = nowMs + ttl * 1000;
    const bound = this.lifeBound(nowMs, entry.explicit_max_ttl, entry.policies, parent, entry.creation_time * 1000, entry.max_ttl ?? 0);
    if (bound && expire > bound) expire = bound;
    const renewed = { ...entry, ttl: Math.round((expire - nowMs) / 1000), expire_time: expire };
    await this.write(renewed);
    if (expire < entry.expire_time) await this.cutDescendants(renewed, nowMs);
    return renewed;
  }

  /** Ends every descendant of `entry` no later than it ends. */
  private async cutDescendants(entry: TokenEntry, nowMs: number): Promise<void> {
    for (const childAccessor of await this.barrier.list(`${PARENT_PREFIX}${entry.accessor}/`)) {
      const child = await this.entryOfAccessor(childAccessor);
      if (!child || (child.expire_time && child.expire_time <= entry.expire_time)) continue;
      const cut = { ...child, ttl: Math.round((entry.expire_time - nowMs) / 1000), expire_time: entry.expire_time };
      await this.write(cut);
      await this.cutDescendants(cut, nowMs);
    }
  }

  /**
   * The latest a token may live until (ms since the epoch; 0 for no bound): the system maximum
   * from now (root tokens excepted), its explicit max and a login's maximum from its creation,
   * its parent's expiry.
   */
  private lifeBound(nowMs: number, explicitMax: number, policies: string[], parent: TokenEntry | undefined, createdMs = nowMs, maxTtl = 0): number {
    const bounds = [
      policies.includes('root') ? 0 : nowMs + this.ttls.maxTtl * 1000,
      explicitMax ? createdMs + explicitMax * 1000 : 0,
      maxTtl ? createdMs + maxTtl * 1000 : 0,
      parent?.expire_time ?? 0,
    ].filter((b) => b > 0);
    return bounds.length ? Math.min(...bounds) : 0;
  }

  private async entryOfAccessor(accessor: string): Promise<TokenEntry | undefined> {
    const hash = await this.barrier.get(ACCESSOR_PREFIX + accessor);
    return hash && (await this.read(hash.toString('utf8')));
  }

  /** Revokes a token and, unless `orphanChildren`, every descendant; with it, the children become orphans. */
  async revoke(entry: TokenEntry, orphanChildren: boolean): Promise<void> {
    const children = await this.barrier.list(`${PARENT_PREFIX}${entry.accessor}/`);
    for (const childAccessor of children) {
      const child = await this.entryOfAccessor(childAccessor);
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
    await this.onRevoked?.(entry);
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

  /**
   * A response-wrapping token, as Vault makes one: an orphan holding only the `response-wrapping`
   * policy, not renewable, living `ttl` seconds (at most the system maximum), created at `path`
   * (the request whose reply it wraps). Single use is enforced by the unwrap (core/wrapping.ts),
   * which revokes it, so it has no use count: counting one at the unwrap request's authorization
   * would revoke it, and delete the reply, before the unwrap could read it.
   */
  async createWrapping(ttl: number, path: string): Promise<{ token: string; entry: TokenEntry }> {
    const nowMs = this.now();
    const life = Math.min(ttl, this.ttls.maxTtl);
    return this.issue(nowMs, {
      policies: [RESPONSE_WRAPPING_POLICY],
      display_name: '',
      meta: null,
      explicit_max_ttl: life,
      expire_time: nowMs + life * 1000,
      num_uses: 0,
      renewable: false,
      parent: '',
      path,
    });
  }

  /**
   * Writes a new token made at `nowMs` (its id kept only as a hash under the salt, a fresh
   * accessor, its TTL what is left until `expire_time`), linked to its parent if it has one.
   */
  private async issue(nowMs: number, fields: NewToken): Promise<{ token: string; entry: TokenEntry }> {
    const { period, max_ttl, bound_cidrs, ...rest } = fields;
    const token = newTokenId();
    const entry: TokenEntry = {
      hash: hmac(await this.loadSalt(), token),
      accessor: randomAccessor(),
      policies: rest.policies,
      display_name: rest.display_name,
      meta: rest.meta,
      creation_time: Math.floor(nowMs / 1000),
      ttl: rest.expire_time ? Math.round((rest.expire_time - nowMs) / 1000) : 0,
      explicit_max_ttl: rest.explicit_max_ttl,
      expire_time: rest.expire_time,
      num_uses: rest.num_uses,
      renewable: rest.renewable,
      parent: rest.parent,
      path: rest.path,
    };
    if (period) entry.period = period;
    if (max_ttl) entry.max_ttl = max_ttl;
    if (bound_cidrs?.length) entry.bound_cidrs = [...bound_cidrs];
    const ops = entryOps(entry);
    if (entry.parent) ops.push({ kind: 'put', path: `${PARENT_PREFIX}${entry.parent}/${entry.accessor}`, value: Buffer.alloc(0) });
    await this.barrier.transaction(ops);
    return { token, entry };
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

  /**
   * A key for another purpose, derived from the install's secret salt (HMAC-SHA256 with the
   * purpose as label), so every node of a cluster holds it once unsealed and nothing new is stored.
   */
  async derivedKey(purpose: string): Promise<Buffer> {
    return createHmac('sha256', await this.loadSalt()).update(`keyward ${purpose}`).digest();
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

/** A child's policies (auth/token/create without a role): the asked ones or the parent's, a subset of the parent's unless it is root, and `default`. */
function childPolicies(parent: TokenEntry, req: CreateTokenRequest): string[] {
  const parentIsRoot = parent.policies.includes('root');
  const policies = [...new Set(req.policies ?? parent.policies.filter((p) => p !== 'root' || parentIsRoot))];
  if (!parentIsRoot) {
    const extra = policies.filter((p) => p !== 'default' && !parent.policies.includes(p));
    if (extra.length) throw new PermissionDeniedError(`child policies must be subset of parent (not held: ${extra.join(', ')})`);
  }
  if (policies.includes('root') && !parentIsRoot) throw new PermissionDeniedError('only a root token may create a root token');
  return withDefault(policies, req.no_default_policy === true);
}

/**
 * The policies of a token made from a role, by Vault's rules: with allowed policies, the asked
 * ones must be among them (none asked: all of them), and the parent's do not matter; without,
 * the child rules apply (none asked: the parent's but root). Disallowed policies are refused either way, and `default` is not added
 * when it is disallowed. A role never makes a root token.
 */
function rolePolicies(role: TokenRole, parent: TokenEntry, req: CreateTokenRequest): string[] {
  let policies: string[];
  if (role.allowed_policies.length) {
    policies = [...new Set(req.policies ?? role.allowed_policies)];
    const extra = policies.filter((p) => p !== 'default' && !role.allowed_policies.includes(p));
    if (extra.length) {
      throw new InvalidRequestError(`token policies (${extra.join(', ')}) must be subset of the role's allowed policies (${role.allowed_policies.join(', ')})`);
    }
  } else {
    policies = childPolicies(parent, { ...req, policies: req.policies ?? parent.policies.filter((p) => p !== 'root'), no_default_policy: true });
  }
  if (policies.includes('root')) throw new InvalidRequestError('root tokens may not be created from a role');
  const disallowed = policies.filter((p) => role.disallowed_policies.includes(p));
  if (disallowed.length) throw new InvalidRequestError(`token policies (${disallowed.join(', ')}) are among the role's disallowed policies`);
  return withDefault(policies, req.no_default_policy === true || role.disallowed_policies.includes('default'));
}

/** A login's policies: canonical names, deduplicated, with `default` unless the method says not; never root. */
function loginPolicies(auth: LoginAuth): string[] {
  const policies = [...new Set(auth.policies.map(policyName))];
  if (policies.includes('root')) throw new InvalidRequestError('auth methods cannot create root tokens');
  return withDefault(policies, auth.noDefaultPolicy === true);
}

/** `policies` with `default` added (unless the token holds root) or removed; `response-wrapping` belongs to wrapping tokens alone. */
function withDefault(policies: string[], noDefault: boolean): string[] {
  if (policies.includes(RESPONSE_WRAPPING_POLICY)) {
    throw new InvalidRequestError(`the "${RESPONSE_WRAPPING_POLICY}" policy is given only to the tokens response wrapping makes; ask for a wrapped reply (X-Vault-Wrap-TTL) instead`);
  }
  if (noDefault) return policies.filter((p) => p !== 'default');
  return policies.includes('root') || policies.includes('default') ? policies : [...policies, 'default'];
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
