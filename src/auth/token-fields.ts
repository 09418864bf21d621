import { InvalidRequestError } from '../core/errors.js';
import { listFieldEntries, optionalBool } from '../core/fields.js';
import { policyName } from '../core/names.js';
import { parseDuration } from '../core/rotation.js';
import { parseCidrList } from './cidr.js';
import type { LoginAuth } from './method.js';

/** The largest use count taken (Vault's fields are Go ints; this keeps them exact in JSON everywhere). */
const MAX_COUNT = 2_147_483_647;

/** Vault's `token_*` fields every auth method's roles (users, certificates...) carry: what a login's token gets. */
export interface TokenFields {
  policies: string[];
  /** Seconds; 0: the mount's default. */
  ttl: number;
  /** Seconds; 0: the mount's maximum. */
  maxTtl: number;
  explicitMaxTtl: number;
  period: number;
  numUses: number;
  boundCidrs: string[];
  noDefaultPolicy: boolean;
  /** Only service tokens are issued; "default" is Vault's spelling for "the mount's default", which is service. */
  type: 'default' | 'service';
}

export const DEFAULT_TOKEN_FIELDS: Readonly<TokenFields> = Object.freeze({
  policies: [],
  ttl: 0,
  maxTtl: 0,
  explicitMaxTtl: 0,
  period: 0,
  numUses: 0,
  boundCidrs: [],
  noDefaultPolicy: false,
  type: 'default',
});

/** The request fields parseTokenFields reads, so a method can tell which of a body's fields nobody reads. */
export const TOKEN_FIELD_NAMES: readonly string[] = [
  'token_policies',
  'token_ttl',
  'token_max_ttl',
  'token_explicit_max_ttl',
  'token_period',
  'token_num_uses',
  'token_bound_cidrs',
  'token_no_default_policy',
  'token_type',
];

/** Pre-`token_*` spellings a method may still accept (Vault: policies everywhere; ttl, max_ttl, period, bound_cidrs per method). */
export type LegacyTokenField = 'policies' | 'ttl' | 'max_ttl' | 'period' | 'bound_cidrs';

/**
 * The token fields after a role write: each field the body gives replaces the existing one
 * (or the default, on create); a legacy spelling counts only when its `token_*` field is absent,
 * as Vault's upgrade rule. Any bad value is a 400 and nothing is returned.
 */
export function parseTokenFields(
  body: Record<string, unknown>,
  existing: Readonly<TokenFields> = DEFAULT_TOKEN_FIELDS,
  legacy: readonly LegacyTokenField[] = ['policies'],
): TokenFields {
  const given = (field: string, old?: LegacyTokenField): [string, unknown] | undefined => {
    if (body[field] !== undefined && body[field] !== null) return [field, body[field]];
    if (old && legacy.includes(old) && body[old] !== undefined && body[old] !== null) return [old, body[old]];
    return undefined;
  };
  const duration = (field: string, old: LegacyTokenField | undefined, current: number): number => {
    const v = given(field, old);
    return v ? parseDuration(v[1], v[0]) : current;
  };
  const fields: TokenFields = { ...existing };
  const policies = given('token_policies', 'policies');
  if (policies) fields.policies = parsePolicies(policies[1], policies[0]);
  fields.ttl = duration('token_ttl', 'ttl', existing.ttl);
  fields.maxTtl = duration('token_max_ttl', 'max_ttl', existing.maxTtl);
  fields.explicitMaxTtl = duration('token_explicit_max_ttl', undefined, existing.explicitMaxTtl);
  fields.period = duration('token_period', 'period', existing.period);
  const numUses = given('token_num_uses');
  if (numUses) fields.numUses = parseCount(numUses[1], numUses[0]);
  const cidrs = given('token_bound_cidrs', 'bound_cidrs');
  if (cidrs) fields.boundCidrs = parseCidrList(cidrs[1], cidrs[0]);
  fields.noDefaultPolicy = optionalBool(body.token_no_default_policy, 'token_no_default_policy') ?? existing.noDefaultPolicy;
  if (body.token_type !== undefined && body.token_type !== null) fields.type = parseTokenType(body.token_type);
  if (fields.maxTtl > 0 && fields.ttl > fields.maxTtl) {
    throw new InvalidRequestError(`token_ttl (${fields.ttl}s) cannot be greater than token_max_ttl (${fields.maxTtl}s)`);
  }
  return fields;
}

/** The token fields as Vault reads them back: `token_*` names, durations as whole seconds. */
export function tokenFieldsData(fields: Readonly<TokenFields>): Record<string, unknown> {
  return {
    token_policies: [...fields.policies],
    token_ttl: fields.ttl,
    token_max_ttl: fields.maxTtl,
    token_explicit_max_ttl: fields.explicitMaxTtl,
    token_period: fields.period,
    token_num_uses: fields.numUses,
    token_bound_cidrs: [...fields.boundCidrs],
    token_no_default_policy: fields.noDefaultPolicy,
    token_type: fields.type,
  };
}

/** What a successful login asks the token store for, from the role's token fields. */
export function loginAuthOf(fields: Readonly<TokenFields>, displayName: string, metadata: Record<string, string>): LoginAuth {
  const auth: LoginAuth = { policies: [...fields.policies], displayName, metadata, renewable: true };
  if (fields.noDefaultPolicy) auth.noDefaultPolicy = true;
  if (fields.ttl) auth.ttl = fields.ttl;
  if (fields.maxTtl) auth.maxTtl = fields.maxTtl;
  if (fields.explicitMaxTtl) auth.explicitMaxTtl = fields.explicitMaxTtl;
  if (fields.period) auth.period = fields.period;
  if (fields.numUses) auth.numUses = fields.numUses;
  if (fields.boundCidrs.length) auth.boundCidrs = [...fields.boundCidrs];
  return auth;
}

/**
 * A policy list as Vault's clients send it (an array, or a comma-separated string): entries
 * trimmed, empties and duplicates dropped, each a canonical policy name; "root" is refused
 * because an auth method never issues root tokens.
 */
export function parsePolicies(v: unknown, field: string): string[] {
  const out: string[] = [];
  for (const name of listFieldEntries(v, field, 'policy names')) {
    if (name === 'root') throw new InvalidRequestError(`${field}: auth methods cannot issue root tokens; remove "root"`);
    if (!out.includes(name)) out.push(policyName(name));
  }
  return out;
}

/** A count (uses) given as a number or digits: a whole number from 0 (unlimited). */
export function parseCount(v: unknown, field: string): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new InvalidRequestError(`${field} must be a whole number`);
  if (n < 0) throw new InvalidRequestError(`${field} cannot be negative`);
  if (n > MAX_COUNT) throw new InvalidRequestError(`${field} is out of range: at most ${MAX_COUNT}`);
  return n;
}

function parseTokenType(v: unknown): TokenFields['type'] {
  // hvac sends an empty token_type when none is given; Vault reads it as the default.
  if (v === '') return 'default';
  if (v === 'default' || v === 'service') return v;
  if (v === 'batch' || v === 'default-batch') {
    throw new InvalidRequestError('token_type "batch" is not offered: keyward issues service tokens; use "service" or "default"');
  }
  throw new InvalidRequestError('token_type must be "service" or "default"');
}
