import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { BarrierOp } from '../barrier/barrier.js';
import type { BarrierView } from '../barrier/view.js';
import { InvalidRequestError, NotFoundError } from '../core/errors.js';
import { optionalBool } from '../core/fields.js';
import { parseDuration } from '../core/rotation.js';
import { jsonBuffer } from '../engines/engine.js';
import { KeyedMutex, Mutex } from '../locks/mutex.js';
import { cidrContains, cidrWithin, parseCidrList } from './cidr.js';
import { type AuthMethod, type AuthMethodDeps, type AuthRequest, type AuthResponse, warnIgnoredFields } from './method.js';
import { entryExists, entryName, listEntryNames, readEntry } from './named-entries.js';
import { loginAuthOf, parseCount, parseTokenFields, TOKEN_FIELD_NAMES, type TokenFields, tokenFieldsData } from './token-fields.js';

/** Vault's role names (framework.GenericNameRegex): word characters, '-' and '.', starting and ending with a word character. */
const ROLE_NAME = /^\w(?:[\w.-]*\w)?$/;
const MAX_ROLE_NAME = 512;
/** Accessors are UUIDs this method made; anything else names nothing (and never reaches a storage path). */
const ACCESSOR = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_ID_LENGTH = 4096;
const MAX_METADATA_KEYS = 64;
const MAX_METADATA_KEY = 128;
const MAX_METADATA_VALUE = 1024;
/** Vault's "never expires" expiration_time. */
const ZERO_TIME = '0001-01-01T00:00:00Z';
/** One answer for every wrong credential, so a caller cannot learn which half was right. */
const INVALID_CREDENTIALS = 'invalid role or secret ID';

const ROLE_FIELDS = [
  'bind_secret_id',
  'secret_id_bound_cidrs',
  'bound_cidr_list',
  'secret_id_num_uses',
  'secret_id_ttl',
  'local_secret_ids',
  'enable_local_secret_ids',
  'policies',
  'period',
  ...TOKEN_FIELD_NAMES,
];
const SECRET_ID_FIELDS = ['metadata', 'cidr_list', 'token_bound_cidrs', 'ttl', 'num_uses', 'secret_id'];

interface RoleEntry {
  roleId: string;
  bindSecretId: boolean;
  secretIdBoundCidrs: string[];
  secretIdNumUses: number;
  /** Seconds; 0: secret-ids do not expire. */
  secretIdTtl: number;
  localSecretIds: boolean;
  token: TokenFields;
}

interface SecretIdEntry {
  /** HMAC of the secret-id under the mount's salt: the secret-id itself is never stored. */
  hmac: string;
  accessor: string;
  cidrList: string[];
  tokenBoundCidrs: string[];
  metadata: Record<string, string>;
  /** Uses left; 0: unlimited. */
  numUses: number;
  ttl: number;
  creationTime: number;
  lastUpdatedTime: number;
  /** Milliseconds since the epoch; 0: never. */
  expirationTime: number;
}

interface AccessorEntry {
  roleName: string;
  hmac: string;
}

type Data = Record<string, unknown>;

/**
 * Vault's AppRole auth method: roles with a role-id and secret-ids (random, kept only as an HMAC
 * under a per-mount salt, with use counts, TTLs and CIDR bounds), logins that trade the pair for
 * a token with the role's token fields.
 *
 * Storage under the view: `salt`; `role/<name>`; `role-id/<hmac>` → name; `secret-id/<name>/<hmac>`;
 * `accessor/<accessor>` → role name and secret-id HMAC.
 */
export class AppRoleMethod implements AuthMethod {
  private salt: Buffer | undefined;
  private readonly saltLock = new Mutex();
  /** Serializes changes to one role and its secret-ids' creation. */
  private readonly roleLocks = new KeyedMutex();
  /** Serializes role-id assignments, so two roles never share one. */
  private readonly roleIdLock = new Mutex();
  /** Serializes each secret-id's uses, so a secret-id with n uses logs in exactly n times. */
  private readonly secretIdLocks = new KeyedMutex();

  constructor(
    private readonly view: BarrierView,
    private readonly deps: AuthMethodDeps,
  ) {}

  isLoginPath(path: string): boolean {
    return path === 'login';
  }

  async loginSourceFields(metadata: Record<string, string>): Promise<TokenFields | undefined> {
    return (await readEntry<RoleEntry>(this.view, 'role', metadata.role_name ?? '', ROLE_NAME))?.token;
  }

  async exists(path: string): Promise<boolean> {
    const name = entryName(path, 'role');
    return name === undefined || entryExists(this.view, 'role', name.toLowerCase(), ROLE_NAME);
  }

  async handle(req: AuthRequest): Promise<AuthResponse | undefined> {
    const path = req.operation === 'list' ? req.path.replace(/\/$/, '') : req.path;
    if (path === 'login') {
      requireWrite(req, 'login');
      return this.login(req);
    }
    if (path === 'tidy/secret-id') {
      requireWrite(req, 'tidy/secret-id');
      await this.tidy();
      return { status: 202 };
    }
    const [area, name, action, sub, ...rest] = path.split('/');
    if (area !== 'role' || rest.length) throw new NotFoundError(`no handler for route "${req.path}" in an approle mount`);
    if (name === undefined) {
      if (req.operation !== 'list') throw new InvalidRequestError('list roles with LIST (or GET ?list=true) on role/');
      return listEntryNames(this.view, 'role');
    }
    const role = roleName(name);
    switch (sub === undefined ? action : `${action}/${sub}`) {
      case undefined:
        return this.roleEndpoint(req, role);
      case 'role-id':
        return this.roleIdEndpoint(req, role);
      case 'secret-id':
        if (req.operation === 'list') return this.listAccessors(role);
        requireWrite(req, `role/${role}/secret-id`);
        return this.createSecretId(role, req.data, undefined);
      case 'custom-secret-id': {
        requireWrite(req, `role/${role}/custom-secret-id`);
        const secretId = requiredString(req.data.secret_id, 'secret_id');
        return this.createSecretId(role, req.data, secretId);
      }
      case 'secret-id/lookup':
        requireWrite(req, `role/${role}/secret-id/lookup`);
        return { data: secretIdData(await this.secretIdBySecret(role, requiredString(req.data.secret_id, 'secret_id'))) };
      case 'secret-id/destroy':
        requireWriteOrDelete(req, `role/${role}/secret-id/destroy`);
        await this.requireRole(role, 400);
        await this.destroySecretId(role, await this.hmac('secret-id', requiredString(req.data.secret_id, 'secret_id')));
        return undefined;
      case 'secret-id-accessor/lookup':
        requireWrite(req, `role/${role}/secret-id-accessor/lookup`);
        return { data: secretIdData(await this.secretIdByAccessor(role, req.data.secret_id_accessor)) };
      case 'secret-id-accessor/destroy': {
        requireWriteOrDelete(req, `role/${role}/secret-id-accessor/destroy`);
        const entry = await this.secretIdByAccessor(role, req.data.secret_id_accessor);
        await this.destroySecretId(role, entry.hmac);
        return undefined;
      }
      default:
        throw new NotFoundError(`no handler for route "${req.path}" in an approle mount`);
    }
  }

  private async roleEndpoint(req: AuthRequest, name: string): Promise<AuthResponse | undefined> {
    switch (req.operation) {
      case 'read':
        return { data: roleData(await this.requireRole(name, 404)) };
      case 'update':
        await this.writeRole(name, req.data);
        return warnIgnoredFields(undefined, req.data, [...ROLE_FIELDS, 'role_name']);
      case 'delete':
        await this.deleteRole(name);
        return undefined;
      default:
        throw new InvalidRequestError(`role/${name} takes GET, POST or DELETE`);
    }
  }

  private async roleIdEndpoint(req: AuthRequest, name: string): Promise<AuthResponse | undefined> {
    if (req.operation === 'read') return { data: { role_id: (await this.requireRole(name, 404)).roleId } };
    requireWrite(req, `role/${name}/role-id`);
    const roleId = requiredString(req.data.role_id, 'role_id');
    if (roleId.length > MAX_ID_LENGTH) throw new InvalidRequestError(`role_id is ${roleId.length} characters long: at most ${MAX_ID_LENGTH}`);
    await this.roleLocks.run(name, async () => {
      const role = await this.requireRole(name, 400);
      await this.roleIdLock.run(async () => {
        const newKey = `role-id/${await this.hmac('role-id', roleId)}`;
        const holder = await this.view.getJson<{ name: string }>(newKey);
        if (holder && holder.name !== name) throw new InvalidRequestError('role_id is already in use by another role');
        const ops: BarrierOp[] = [{ kind: 'delete', path: `role-id/${await this.hmac('role-id', role.roleId)}` }];
        ops.push({ kind: 'put', path: newKey, value: jsonBuffer({ name }) }, { kind: 'put', path: `role/${name}`, value: jsonBuffer({ ...role, roleId }) });
        await this.view.transaction(ops);
      });
    });
    return undefined;
  }

  /** Creates or updates a role: every field the body gives replaces the stored one; a new role gets a random role-id. */
  private async writeRole(name: string, body: Data): Promise<void> {
    await this.roleLocks.run(name, async () => {
      const existing = await this.view.getJson<RoleEntry>(`role/${name}`);
      const role: RoleEntry = {
        roleId: existing?.roleId ?? randomUUID(),
        bindSecretId: optionalBool(body.bind_secret_id, 'bind_secret_id') ?? existing?.bindSecretId ?? true,
        secretIdBoundCidrs: existing?.secretIdBoundCidrs ?? [],
        secretIdNumUses: existing?.secretIdNumUses ?? 0,
        secretIdTtl: existing?.secretIdTtl ?? 0,
        localSecretIds: existing?.localSecretIds ?? false,
        token: parseTokenFields(body, existing?.token, ['policies', 'period']),
      };
      const cidrs = given(body, 'secret_id_bound_cidrs') ?? given(body, 'bound_cidr_list');
      if (cidrs) role.secretIdBoundCidrs = parseCidrList(cidrs[1], cidrs[0]);
      if (given(body, 'secret_id_num_uses')) role.secretIdNumUses = parseCount(body.secret_id_num_uses, 'secret_id_num_uses');
      if (given(body, 'secret_id_ttl')) role.secretIdTtl = parseDuration(body.secret_id_ttl, 'secret_id_ttl');
      const local = optionalBool(body.local_secret_ids ?? body.enable_local_secret_ids, 'local_secret_ids');
      if (local !== undefined) {
        if (existing && local !== existing.localSecretIds) throw new InvalidRequestError('local_secret_ids can only be set when the role is created');
        role.localSecretIds = local;
      }
      if (!role.bindSecretId && role.secretIdBoundCidrs.length === 0 && role.token.boundCidrs.length === 0) {
        throw new InvalidRequestError('at least one constraint must be enabled on the role: bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs');
      }
      const ops: BarrierOp[] = [{ kind: 'put', path: `role/${name}`, value: jsonBuffer(role) }];
      if (existing) return this.view.transaction(ops);
      await this.roleIdLock.run(async () => {
        ops.push({ kind: 'put', path: `role-id/${await this.hmac('role-id', role.roleId)}`, value: jsonBuffer({ name }) });
        await this.view.transaction(ops);
      });
    });
  }

  /** Deletes the role (new logins fail from here on), then each of its secret-ids with its accessor. */
  private async deleteRole(name: string): Promise<void> {
    await this.roleLocks.run(name, async () => {
      const role = await this.view.getJson<RoleEntry>(`role/${name}`);
      if (role) {
        await this.roleIdLock.run(async () =>
          this.view.transaction([
            { kind: 'delete', path: `role/${name}` },
            { kind: 'delete', path: `role-id/${await this.hmac('role-id', role.roleId)}` },
          ]),
        );
      }
      for (const hmac of await this.view.list(`secret-id/${name}/`)) await this.destroySecretId(name, hmac);
    });
  }

  private async createSecretId(name: string, body: Data, custom: string | undefined): Promise<AuthResponse> {
    if (custom !== undefined && custom.length > MAX_ID_LENGTH) {
      throw new InvalidRequestError(`secret_id is ${custom.length} characters long: at most ${MAX_ID_LENGTH}`);
    }
    return this.roleLocks.run(name, async () => {
      const role = await this.requireRole(name, 400);
      if (!role.bindSecretId) throw new InvalidRequestError(`bind_secret_id is not set on role "${name}": its logins take no secret ID`);
      const cidrList = parseCidrList(body.cidr_list, 'cidr_list');
      requireWithin(cidrList, role.secretIdBoundCidrs, 'cidr_list', 'secret_id_bound_cidrs');
      const tokenBoundCidrs = parseCidrList(body.token_bound_cidrs, 'token_bound_cidrs');
      requireWithin(tokenBoundCidrs, role.token.boundCidrs, 'token_bound_cidrs', 'token_bound_cidrs');
      const numUses = given(body, 'num_uses') ? parseCount(body.num_uses, 'num_uses') : 0;
      if (role.secretIdNumUses > 0 && numUses > role.secretIdNumUses) {
        throw new InvalidRequestError(`num_uses (${numUses}) cannot be higher than the role's secret_id_num_uses (${role.secretIdNumUses})`);
      }
      const ttl = given(body, 'ttl') ? parseDuration(body.ttl, 'ttl') : 0;
      if (role.secretIdTtl > 0 && ttl > role.secretIdTtl) {
        throw new InvalidRequestError(`ttl (${ttl}s) cannot be longer than the role's secret_id_ttl (${role.secretIdTtl}s)`);
      }
      const metadata = parseMetadata(body.metadata);
      const secretId = custom ?? randomUUID();
      const hmac = await this.hmac('secret-id', secretId);
      const path = `secret-id/${name}/${hmac}`;
      if (await this.view.exists(path)) throw new InvalidRequestError(`that secret ID is already registered on role "${name}"`);
      const now = this.deps.now();
      const entry: SecretIdEntry = {
        hmac,
        accessor: randomUUID(),
        cidrList,
        tokenBoundCidrs,
        metadata,
        numUses: numUses || role.secretIdNumUses,
        ttl: ttl || role.secretIdTtl,
        creationTime: now,
        lastUpdatedTime: now,
        expirationTime: 0,
      };
      if (entry.ttl) entry.expirationTime = now + entry.ttl * 1000;
      await this.view.transaction([
        { kind: 'put', path, value: jsonBuffer(entry) },
        { kind: 'put', path: `accessor/${entry.accessor}`, value: jsonBuffer({ roleName: name, hmac } satisfies AccessorEntry) },
      ]);
      const data = { secret_id: secretId, secret_id_accessor: entry.accessor, secret_id_ttl: entry.ttl, secret_id_num_uses: entry.numUses };
      return warnIgnoredFields({ data }, body, [...SECRET_ID_FIELDS, 'role_name']);
    });
  }

  private async listAccessors(name: string): Promise<AuthResponse> {
    await this.requireRole(name, 404);
    const keys: string[] = [];
    for (const hmac of await this.view.list(`secret-id/${name}/`)) {
      const entry = await this.view.getJson<SecretIdEntry>(`secret-id/${name}/${hmac}`);
      if (entry) keys.push(entry.accessor);
    }
    if (keys.length === 0) throw new NotFoundError('');
    return { data: { keys } };
  }

  private async secretIdBySecret(name: string, secretId: string): Promise<SecretIdEntry> {
    await this.requireRole(name, 404);
    const entry = await this.secretIdEntry(name, await this.hmac('secret-id', secretId));
    if (!entry) throw new NotFoundError(`no such secret ID on role "${name}"`);
    return entry;
  }

  private async secretIdByAccessor(name: string, accessor: unknown): Promise<SecretIdEntry> {
    const text = requiredString(accessor, 'secret_id_accessor');
    await this.requireRole(name, 404);
    const index = ACCESSOR.test(text) ? await this.view.getJson<AccessorEntry>(`accessor/${text}`) : undefined;
    const entry = index?.roleName === name ? await this.secretIdEntry(name, index.hmac) : undefined;
    if (!entry) throw new NotFoundError(`no secret ID with accessor "${text}" on role "${name}"`);
    return entry;
  }

  /** The stored secret-id, its HMAC checked in constant time against the one it was looked up by. */
  private async secretIdEntry(name: string, hmac: string): Promise<SecretIdEntry | undefined> {
    const entry = await this.view.getJson<SecretIdEntry>(`secret-id/${name}/${hmac}`);
    return entry && sameHex(entry.hmac, hmac) ? entry : undefined;
  }

  /** Removes a secret-id and its accessor (a missing one is already gone, as Vault's destroy). */
  private async destroySecretId(name: string, hmac: string): Promise<void> {
    await this.secretIdLocks.run(hmac, async () => {
      const entry = await this.view.getJson<SecretIdEntry>(`secret-id/${name}/${hmac}`);
      if (!entry) return;
      await this.view.transaction([
        { kind: 'delete', path: `secret-id/${name}/${hmac}` },
        { kind: 'delete', path: `accessor/${entry.accessor}` },
      ]);
    });
  }

  private async login(req: AuthRequest): Promise<AuthResponse> {
    const roleId = optionalString(req.data.role_id, 'role_id')?.trim() ?? '';
    if (roleId === '') throw new InvalidRequestError('missing role_id');
    const secretId = optionalString(req.data.secret_id, 'secret_id')?.trim() ?? '';
    const index = roleId.length <= MAX_ID_LENGTH ? await this.view.getJson<{ name: string }>(`role-id/${await this.hmac('role-id', roleId)}`) : undefined;
    const role = index && (await this.view.getJson<RoleEntry>(`role/${index.name}`));
    if (!index || !role || !sameText(role.roleId, roleId)) throw new InvalidRequestError(INVALID_CREDENTIALS);
    const ip = req.connection.remoteAddress;
    let metadata: Record<string, string> = {};
    let tokenBoundCidrs = role.token.boundCidrs;
    if (role.bindSecretId) {
      if (secretId === '' || secretId.length > MAX_ID_LENGTH) throw new InvalidRequestError(INVALID_CREDENTIALS);
      const entry = await this.useSecretId(index.name, role, await this.hmac('secret-id', secretId), ip);
      metadata = entry.metadata;
      if (entry.tokenBoundCidrs.length) tokenBoundCidrs = entry.tokenBoundCidrs;
    } else {
      requireRoleCidrs(role, ip);
    }
    const auth = loginAuthOf({ ...role.token, boundCidrs: tokenBoundCidrs }, 'approle', { ...metadata, role_name: index.name });
    return { auth };
  }

  /**
   * Checks a secret-id (present, unexpired, from an allowed address) and spends one of its uses,
   * the last deleting it: under its lock, so concurrent logins cannot spend the same use twice.
   */
  private async useSecretId(name: string, role: RoleEntry, hmac: string, ip: string): Promise<SecretIdEntry> {
    return this.secretIdLocks.run(hmac, async () => {
      const entry = await this.secretIdEntry(name, hmac);
      if (!entry) throw new InvalidRequestError(INVALID_CREDENTIALS);
      const now = this.deps.now();
      const ops: BarrierOp[] = [
        { kind: 'delete', path: `secret-id/${name}/${hmac}` },
        { kind: 'delete', path: `accessor/${entry.accessor}` },
      ];
      if (entry.expirationTime && now >= entry.expirationTime) {
        await this.view.transaction(ops);
        throw new InvalidRequestError(INVALID_CREDENTIALS);
      }
      requireRoleCidrs(role, ip);
      if (entry.cidrList.length && !cidrContains(entry.cidrList, ip)) {
        throw new InvalidRequestError(`source address ${ip} is not allowed by the CIDR restrictions (cidr_list) on the secret ID`);
      }
      if (entry.numUses === 1) await this.view.transaction(ops);
      else if (entry.numUses > 1) await this.view.put(`secret-id/${name}/${hmac}`, jsonBuffer({ ...entry, numUses: entry.numUses - 1, lastUpdatedTime: now }));
      return entry;
    });
  }

  /** Removes expired secret-ids, secret-ids of deleted roles, and accessors whose secret-id is gone. */
  private async tidy(): Promise<void> {
    const now = this.deps.now();
    for (const dir of await this.view.list('secret-id/')) {
      const name = dir.replace(/\/$/, '');
      const roleExists = await this.view.exists(`role/${name}`);
      for (const hmac of await this.view.list(`secret-id/${name}/`)) {
        const entry = await this.view.getJson<SecretIdEntry>(`secret-id/${name}/${hmac}`);
        if (entry && (!roleExists || (entry.expirationTime && now >= entry.expirationTime))) await this.destroySecretId(name, hmac);
      }
    }
    for (const accessor of await this.view.list('accessor/')) {
      const index = await this.view.getJson<AccessorEntry>(`accessor/${accessor}`);
      if (!index) continue;
      await this.secretIdLocks.run(index.hmac, async () => {
        if (!(await this.view.exists(`secret-id/${index.roleName}/${index.hmac}`))) await this.view.delete(`accessor/${accessor}`);
      });
    }
  }

  private async requireRole(name: string, status: 400 | 404): Promise<RoleEntry> {
    const role = await this.view.getJson<RoleEntry>(`role/${name}`);
    if (role) return role;
    const message = `role "${name}" does not exist`;
    throw status === 404 ? new NotFoundError(message) : new InvalidRequestError(message);
  }

  /** HMAC-SHA256 of `value` under the mount's salt (made on first use), hex; `purpose` keeps role-ids and secret-ids apart. */
  private async hmac(purpose: 'role-id' | 'secret-id', value: string): Promise<string> {
    this.salt ??= await this.saltLock.run(async () => {
      const stored = await this.view.get('salt');
      if (stored) return stored;
      const fresh = randomBytes(32);
      await this.view.put('salt', fresh);
      return fresh;
    });
    return createHmac('sha256', this.salt).update(`${purpose}\0${value}`).digest('hex');
  }
}

function roleData(role: RoleEntry): Data {
  const data: Data = {
    bind_secret_id: role.bindSecretId,
    secret_id_bound_cidrs: [...role.secretIdBoundCidrs],
    secret_id_num_uses: role.secretIdNumUses,
    secret_id_ttl: role.secretIdTtl,
    local_secret_ids: role.localSecretIds,
    ...tokenFieldsData(role.token),
    policies: [...role.token.policies],
  };
  if (role.token.period) data.period = role.token.period;
  return data;
}

function secretIdData(entry: SecretIdEntry): Data {
  return {
    cidr_list: [...entry.cidrList],
    creation_time: new Date(entry.creationTime).toISOString(),
    expiration_time: entry.expirationTime ? new Date(entry.expirationTime).toISOString() : ZERO_TIME,
    last_updated_time: new Date(entry.lastUpdatedTime).toISOString(),
    metadata: { ...entry.metadata },
    secret_id_accessor: entry.accessor,
    secret_id_num_uses: entry.numUses,
    secret_id_ttl: entry.ttl,
    token_bound_cidrs: [...entry.tokenBoundCidrs],
  };
}

function requireRoleCidrs(role: RoleEntry, ip: string): void {
  if (role.secretIdBoundCidrs.length && !cidrContains(role.secretIdBoundCidrs, ip)) {
    throw new InvalidRequestError(`source address ${ip} is not allowed by the CIDR restrictions (secret_id_bound_cidrs) on the role`);
  }
}

/** A secret-id's own bounds must lie within the role's, when the role has any. */
function requireWithin(cidrs: string[], bounds: string[], field: string, roleField: string): void {
  if (bounds.length === 0) return;
  const outside = cidrs.find((c) => !cidrWithin(c, bounds));
  if (outside) throw new InvalidRequestError(`${field}: "${outside}" is not within the role's ${roleField} (${bounds.join(', ')})`);
}

/** Secret-id metadata: a JSON object of strings, sent as a JSON string (Vault's form) or an object (as hvac's custom-secret-id sends it). */
function parseMetadata(v: unknown): Record<string, string> {
  if (v === undefined || v === null || v === '') return {};
  const hint = 'metadata must be a JSON object of string values, such as "{\\"env\\": \\"prod\\"}"';
  let obj: unknown = v;
  if (typeof v === 'string') {
    try {
      obj = JSON.parse(v);
    } catch {
      throw new InvalidRequestError(hint);
    }
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new InvalidRequestError(hint);
  const entries = Object.entries(obj);
  if (entries.length > MAX_METADATA_KEYS) throw new InvalidRequestError(`metadata has ${entries.length} keys: at most ${MAX_METADATA_KEYS}`);
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (typeof value !== 'string') throw new InvalidRequestError(hint);
    if (key === '' || key.length > MAX_METADATA_KEY) throw new InvalidRequestError(`metadata keys must be 1 to ${MAX_METADATA_KEY} characters`);
    if (value.length > MAX_METADATA_VALUE) throw new InvalidRequestError(`metadata value of "${key}" is longer than ${MAX_METADATA_VALUE} characters`);
    out[key] = value;
  }
  return out;
}

/** Role names are case-insensitive, as Vault's: stored and matched lower-cased. */
function roleName(raw: string): string {
  if (raw.length <= MAX_ROLE_NAME && ROLE_NAME.test(raw)) return raw.toLowerCase();
  throw new InvalidRequestError(
    `invalid role name "${raw.slice(0, 64)}": role names are letters, digits, _ . and -, ` +
      `starting and ending with a letter or digit, at most ${MAX_ROLE_NAME} characters`,
  );
}

/** The field's value, with the name it was given under, unless absent or null. */
function given(body: Data, field: string): [string, unknown] | undefined {
  return body[field] === undefined || body[field] === null ? undefined : [field, body[field]];
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new InvalidRequestError(`${field} must be a string`);
  return v;
}

function requiredString(v: unknown, field: string): string {
  const s = optionalString(v, field)?.trim();
  if (!s) throw new InvalidRequestError(`missing ${field}`);
  return s;
}

function requireWrite(req: AuthRequest, what: string): void {
  if (req.operation !== 'update') throw new InvalidRequestError(`${what} takes POST or PUT`);
}

function requireWriteOrDelete(req: AuthRequest, what: string): void {
  if (req.operation !== 'update' && req.operation !== 'delete') throw new InvalidRequestError(`${what} takes POST, PUT or DELETE`);
}


function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
