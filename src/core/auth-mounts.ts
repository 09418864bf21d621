import { createAuthMethod } from '../auth/catalog.js';
import type { AuthMethod, AuthMethodDeps, AuthType } from '../auth/method.js';
import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { BarrierView } from '../barrier/view.js';
import { InvalidRequestError } from './errors.js';
import { mountPath } from './names.js';
import type { TokenEntry } from './token-store.js';
import { checkTtls, type MountTtls, newTableEntry, PathTable, SYSTEM_TTLS, type TableEntry } from './path-table.js';

export const AUTH_TABLE_PATH = 'core/auth';
/** Where an auth method's own data lives: `auth/<uuid>/`. */
export const AUTH_DATA_PREFIX = 'auth/';
const TOKEN_PATH = 'token/';
const AUTH_TYPES: readonly AuthType[] = ['approle', 'userpass', 'cert', 'jwt'];

export interface AuthEntry extends TableEntry {
  type: AuthType | 'token';
  config: MountTtls;
  /** Set while the method is being disabled: no request reaches it, and an interrupted disable is finished later. */
  disabling?: true;
}

/** What a disable does besides the table: revoke the tokens logins issued under a path prefix, delete the method's data under a barrier prefix. */
export interface DisableSteps {
  revokeTokens(pathPrefix: string): Promise<void>;
  deleteData(barrierPrefix: string): Promise<void>;
}

/** The auth method table (Vault's sys/auth): which method serves which path under auth/, with the built-in token store at token/. */
export class AuthTable extends PathTable<AuthEntry> {
  constructor(barrier: SecurityBarrier) {
    super(barrier, AUTH_TABLE_PATH);
  }

  /** The table written at init: the token store alone, as Vault lists it. */
  static initialOps(): BarrierOp[] {
    return [{ kind: 'put', path: AUTH_TABLE_PATH, value: Buffer.from(JSON.stringify([tokenEntry()])) }];
  }

  /** Loads the table; one stored before auth methods existed gets the token store's entry, written with the next change. */
  override async load(): Promise<void> {
    await super.load();
    if (!this.entries.has(TOKEN_PATH)) this.entries.set(TOKEN_PATH, tokenEntry());
  }

  /** The methods as sys/auth lists them: enabled and not being disabled. */
  enabled(): AuthEntry[] {
    return this.list().filter((e) => this.routable(e));
  }

  /** The enabled method at exactly `path` ("approle" or "approle/"). */
  enabledAt(path: string): AuthEntry | undefined {
    const entry = this.get(path);
    return entry && this.routable(entry) ? entry : undefined;
  }

  async enable(path: string, type: string, description: string, ttls: MountTtls = SYSTEM_TTLS): Promise<AuthEntry> {
    const p = mountPath(path);
    const authType = authTypeOf(type);
    if (p === TOKEN_PATH) throw new InvalidRequestError('the token auth method is built in at "token/"; enable other methods at another path');
    const existing = this.overlapping(p);
    if (existing !== undefined) throw new InvalidRequestError(`path is already in use at ${existing}`);
    checkTtls(ttls);
    const entry: AuthEntry = newTableEntry(p, authType, description, ttls, 'auth_');
    await this.save(new Map(this.entries).set(p, entry));
    return entry;
  }

  /**
   * Disables the method at `path` (Vault's DELETE sys/auth/<path>; nothing there is not an
   * error). First the table marks it disabling, so no login or request reaches it; then the
   * tokens its logins issued are revoked and its data deleted; then its entry goes. A crash
   * in between leaves the mark, and `finishDisables` completes the work.
   */
  async disable(path: string, steps: DisableSteps): Promise<void> {
    const p = mountPath(path);
    if (p === TOKEN_PATH) throw new InvalidRequestError('the token auth method is built in and cannot be disabled');
    const entry = this.entries.get(p);
    if (!entry) return;
    if (!entry.disabling) await this.save(new Map(this.entries).set(p, { ...entry, disabling: true }));
    await this.removeDisabled(entry, steps);
  }

  /** Completes disables a crash or a seal interrupted (on the node that writes). */
  async finishDisables(steps: DisableSteps): Promise<void> {
    for (const entry of this.list()) if (entry.disabling) await this.removeDisabled(entry, steps);
  }

  /** Applies a tune (sys/auth/<path>/tune): description and TTLs; the token store's TTLs are the server's. */
  async tune(path: string, description: string | undefined, ttls: MountTtls | undefined): Promise<void> {
    const p = mountPath(path);
    const entry = this.enabledAt(p);
    if (!entry) throw new InvalidRequestError(`tune of path "auth/${p}" failed: no auth method enabled there`);
    if (p === TOKEN_PATH && ttls && (ttls.default_lease_ttl !== entry.config.default_lease_ttl || ttls.max_lease_ttl !== entry.config.max_lease_ttl)) {
      throw new InvalidRequestError("the token store's TTLs are the server's default_lease_ttl and max_lease_ttl (its configuration); tuning them at auth/token/ is not offered");
    }
    await this.save(new Map(this.entries).set(p, this.tuned(entry, description, ttls)));
  }

  protected override routable(entry: AuthEntry): boolean {
    return !entry.disabling;
  }

  private async removeDisabled(entry: AuthEntry, steps: DisableSteps): Promise<void> {
    await steps.revokeTokens(`auth/${entry.path}`);
    await steps.deleteData(`${AUTH_DATA_PREFIX}${entry.uuid}/`);
    const next = new Map(this.entries);
    next.delete(entry.path);
    await this.save(next);
  }
}

/** The method type a sys/auth request names, or a 400 that says what keyward offers. */
function authTypeOf(type: string): AuthType {
  if ((AUTH_TYPES as readonly string[]).includes(type)) return type as AuthType;
  if (type === 'token') throw new InvalidRequestError('the token auth method is built in (at auth/token/) and cannot be enabled again');
  if (type === 'oidc') {
    throw new InvalidRequestError('auth method type "oidc" is not offered: keyward does not run the OIDC browser login flow; enable type "jwt" and log in with a JWT against roles bound to its claims');
  }
  throw new InvalidRequestError(`auth method type "${type}" is not offered: keyward offers ${AUTH_TYPES.slice(0, -1).join(', ')} and ${AUTH_TYPES.at(-1)}`);
}

function tokenEntry(): AuthEntry {
  return newTableEntry(TOKEN_PATH, 'token', 'token based credentials', { ...SYSTEM_TTLS }, 'auth_');
}

export interface RoutedAuth {
  mount: AuthEntry;
  method: AuthMethod;
  /** The request path below the mount ("login", "role/web"). */
  path: string;
}

/** Finds the auth method for a path below auth/; methods are kept per mount, so their state (locks, caches) is shared by its requests. */
export class AuthMethods {
  private readonly methods = new Map<string, AuthMethod>();

  constructor(
    private readonly barrier: SecurityBarrier,
    private readonly table: AuthTable,
    private readonly deps: AuthMethodDeps,
  ) {}

  /** The method serving `path` ("approle/login"); undefined for none, and for the token store (its routes are its own). */
  route(path: string): RoutedAuth | undefined {
    const mount = this.table.resolve(path);
    if (!mount || mount.type === 'token') return undefined;
    let method = this.methods.get(mount.uuid);
    if (!method) {
      method = createAuthMethod(mount.type, new BarrierView(this.barrier, `${AUTH_DATA_PREFIX}${mount.uuid}/`), this.deps);
      this.methods.set(mount.uuid, method);
    }
    return { mount, method, path: path.slice(mount.path.length) };
  }

  /**
   * Why a token may not be renewed as far as its auth method is concerned, undefined when it may.
   * One from a login needs its method still mounted, the role or user it logged in with still
   * there, and that role's or user's policies still the token's: as Vault's methods, a renewal
   * does not carry old policies forward ("default" aside, which a login adds).
   */
  async renewalRefusal(entry: TokenEntry): Promise<string | undefined> {
    if (!entry.path.startsWith('auth/') || entry.path.startsWith('auth/token/')) return undefined;
    const routed = this.route(entry.path.slice('auth/'.length));
    const source = routed && (await routed.method.loginSourceFields(entry.meta ?? {}));
    if (!source) return 'the role or user this token logged in with no longer exists: it cannot be renewed; log in again';
    if (!samePoliciesBesidesDefault(source.policies, entry.policies)) {
      // Not naming the new policies: the token's holder may not be allowed to read the role.
      return 'the policies of the role or user this token logged in with have changed: it cannot be renewed; log in again for a token with the new ones';
    }
    return undefined;
  }

  /** Drops methods of mounts that are gone, or all of them (a node taking over as active rereads every method's state). */
  prune(all = false): void {
    const live = new Set(this.table.enabled().map((e) => e.uuid));
    for (const uuid of this.methods.keys()) if (all || !live.has(uuid)) this.methods.delete(uuid);
  }
}

function samePoliciesBesidesDefault(a: readonly string[], b: readonly string[]): boolean {
  const set = (policies: readonly string[]) => new Set(policies.filter((p) => p !== 'default'));
  const x = set(a);
  const y = set(b);
  return x.size === y.size && [...x].every((p) => y.has(p));
}
