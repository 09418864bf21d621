import { parseCidrList } from '../auth/cidr.js';
import type { SecurityBarrier } from '../barrier/barrier.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import { optionalBool } from './fields.js';
import { policyName } from './names.js';
import { parseDuration } from './rotation.js';

const ROLE_PREFIX = 'sys/token/role/';
const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;
const PATH_SUFFIX = /^(?!.*(^|\/)\.{1,2}(\/|$))[A-Za-z0-9_.@-]+(\/[A-Za-z0-9_.@-]+)*$/;

/** A token role (auth/token/roles/<name>), in Vault's field names: what auth/token/create/<name> issues. */
export interface TokenRole {
  name: string;
  allowed_policies: string[];
  disallowed_policies: string[];
  orphan: boolean;
  renewable: boolean;
  /** Appended to the tokens' path, "auth/token/create/<name>/<suffix>". */
  path_suffix: string;
  /** Seconds; non-zero: the tokens are periodic. */
  token_period: number;
  token_explicit_max_ttl: number;
  token_bound_cidrs: string[];
  token_type: 'default-service' | 'service';
}

/** Vault's role fields keyward does not implement: accepted only unset, refused rather than ignored. */
const UNSUPPORTED = ['allowed_policies_glob', 'disallowed_policies_glob', 'allowed_entity_aliases', 'token_num_uses', 'token_no_default_policy'];

/** A role name as given; 400 unless it is letters, digits and . _ @ - (the ACL sees it as sent, so it is never cleaned up). */
export function roleName(raw: string): string {
  if (ROLE_NAME.test(raw)) return raw;
  throw new InvalidRequestError(`role name ${JSON.stringify(raw)} is not valid: use letters, digits and . _ @ -, starting with a letter or digit, at most 128 characters`);
}

/** Token roles, stored through the barrier under sys/token/role/ (read on each use: a standby never holds a stale one). */
export class TokenRoleStore {
  constructor(private readonly barrier: SecurityBarrier) {}

  async get(name: string): Promise<TokenRole | undefined> {
    const raw = await this.barrier.get(ROLE_PREFIX + roleName(name));
    return raw && (JSON.parse(raw.toString('utf8')) as TokenRole);
  }

  /** The role, or 400 as Vault answers a create against an unknown role. */
  async require(name: string): Promise<TokenRole> {
    const role = await this.get(name);
    if (!role) throw new InvalidRequestError(`unknown role ${name}`);
    return role;
  }

  async list(): Promise<string[]> {
    return this.barrier.list(ROLE_PREFIX);
  }

  /** Creates or updates a role from a request body: the fields given replace, the others stay (or take Vault's defaults). */
  async write(name: string, body: Record<string, unknown>): Promise<TokenRole> {
    const role = parseRole(roleName(name), body, await this.get(name));
    await this.barrier.put(ROLE_PREFIX + role.name, Buffer.from(JSON.stringify(role)));
    return role;
  }

  async delete(name: string): Promise<void> {
    await this.barrier.delete(ROLE_PREFIX + roleName(name));
  }
}

/** How Vault reads a role back (the `token_*` fields and their older spellings alike). */
export function roleData(role: TokenRole): Record<string, unknown> {
  return {
    name: role.name,
    allowed_policies: role.allowed_policies,
    allowed_policies_glob: [],
    disallowed_policies: role.disallowed_policies,
    disallowed_policies_glob: [],
    allowed_entity_aliases: null,
    orphan: role.orphan,
    renewable: role.renewable,
    path_suffix: role.path_suffix,
    period: role.token_period,
    token_period: role.token_period,
    explicit_max_ttl: role.token_explicit_max_ttl,
    token_explicit_max_ttl: role.token_explicit_max_ttl,
    bound_cidrs: role.token_bound_cidrs,
    token_bound_cidrs: role.token_bound_cidrs,
    token_no_default_policy: false,
    token_num_uses: 0,
    token_type: role.token_type,
  };
}

function parseRole(name: string, body: Record<string, unknown>, existing: TokenRole | undefined): TokenRole {
  for (const field of UNSUPPORTED) {
    const v = body[field];
    if (v !== undefined && v !== null && v !== '' && v !== false && v !== 0 && !(Array.isArray(v) && v.length === 0)) {
      throw new InvalidRequestError(`token role field "${field}" is not supported by keyward; leave it out`);
    }
  }
  const given = (field: string, old?: string): unknown => {
    const v = body[field];
    return v !== undefined && v !== null ? v : old !== undefined ? body[old] ?? undefined : undefined;
  };
  const role: TokenRole = existing ?? {
    name,
    allowed_policies: [],
    disallowed_policies: [],
    orphan: false,
    renewable: true,
    path_suffix: '',
    token_period: 0,
    token_explicit_max_ttl: 0,
    token_bound_cidrs: [],
    token_type: 'default-service',
  };
  const next: TokenRole = { ...role };
  const allowed = given('allowed_policies');
  if (allowed !== undefined) next.allowed_policies = policyList(allowed, 'allowed_policies');
  const disallowed = given('disallowed_policies');
  if (disallowed !== undefined) next.disallowed_policies = policyList(disallowed, 'disallowed_policies');
  next.orphan = optionalBool(body.orphan, 'orphan') ?? role.orphan;
  next.renewable = optionalBool(body.renewable, 'renewable') ?? role.renewable;
  const suffix = given('path_suffix');
  if (suffix !== undefined) next.path_suffix = pathSuffix(suffix);
  const period = given('token_period', 'period');
  if (period !== undefined && period !== '') next.token_period = parseDuration(period, body.token_period !== undefined ? 'token_period' : 'period');
  const explicitMax = given('token_explicit_max_ttl', 'explicit_max_ttl');
  if (explicitMax !== undefined && explicitMax !== '') {
    next.token_explicit_max_ttl = parseDuration(explicitMax, body.token_explicit_max_ttl !== undefined ? 'token_explicit_max_ttl' : 'explicit_max_ttl');
  }
  const cidrs = given('token_bound_cidrs', 'bound_cidrs');
  if (cidrs !== undefined) next.token_bound_cidrs = parseCidrList(cidrs, 'token_bound_cidrs');
  const type = given('token_type');
  if (type !== undefined) next.token_type = roleTokenType(type);
  return next;
}

/** A list of policy names, as an array or one comma-separated string; each canonical. */
function policyList(v: unknown, field: string): string[] {
  const items = typeof v === 'string' ? v.split(',') : v;
  if (!Array.isArray(items) || !items.every((x) => typeof x === 'string')) throw new InvalidRequestError(`${field} must be a list of policy names`);
  return [...new Set(items.map((x) => x.trim()).filter((x) => x !== '').map(policyName))];
}

function pathSuffix(v: unknown): string {
  if (v === '') return '';
  if (typeof v !== 'string' || !PATH_SUFFIX.test(v)) {
    throw new InvalidRequestError('path_suffix must be segments of letters, digits and . _ @ - joined by "/", without ".." or empty segments');
  }
  return v;
}

function roleTokenType(v: unknown): TokenRole['token_type'] {
  if (v === 'default' || v === 'default-service' || v === '') return 'default-service';
  if (v === 'service') return 'service';
  if (v === 'batch' || v === 'default-batch') {
    throw new InvalidRequestError('batch tokens are not offered: keyward issues service tokens; use token_type "service" or "default"');
  }
  throw new InvalidRequestError('token_type must be "service", "default-service" or "default"');
}
