import type { BarrierView } from '../barrier/view.js';
import { InvalidRequestError, NotFoundError, PermissionDeniedError } from '../core/errors.js';
import { isUnset, optionalBool, parseStringList } from '../core/fields.js';
import { parseDuration } from '../core/rotation.js';
import { jsonBuffer } from '../engines/engine.js';
import { cidrContains } from './cidr.js';
import { globMatch } from './glob.js';
import { type JwtKeySource, JwtKeys, SUPPORTED_ALGORITHMS, verifyJwt } from './jwt-verify.js';
import { type AuthMethod, type AuthMethodDeps, type AuthRequest, type AuthResponse, refuseUnserved, warnIgnoredFields } from './method.js';
import { entryExists, entryName, listEntryNames, readEntry } from './named-entries.js';
import { loginAuthOf, parseTokenFields, TOKEN_FIELD_NAMES, tokenFieldsData, type TokenFields } from './token-fields.js';

/** Vault's GenericNameRegex: role names are kept exactly as given (case included). */
const ROLE_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?$/;
const NO_OIDC = 'OIDC discovery and the browser flow are not offered: configure jwt_validation_pubkeys or jwks_url';
/** Vault's leeway defaults, applied when a role's leeway is 0 (a negative leeway means none). */
const DEFAULT_CLOCK_SKEW_LEEWAY = 60;
const DEFAULT_CLAIM_LEEWAY = 150;
/** The fields config and role writes read (empty OIDC fields, as hvac sends them, are read to be accepted). */
const CONFIG_FIELDS = [
  'jwt_validation_pubkeys',
  'jwks_url',
  'jwks_ca_pem',
  'bound_issuer',
  'jwt_supported_algs',
  'default_role',
  'jwks_pairs',
  'provider_config',
  'unsupported_critical_cert_extensions',
];
const ROLE_FIELDS = [
  'name',
  'role_type',
  'bound_audiences',
  'bound_subject',
  'bound_claims',
  'bound_claims_type',
  'claim_mappings',
  'user_claim',
  'user_claim_json_pointer',
  'groups_claim',
  'clock_skew_leeway',
  'expiration_leeway',
  'not_before_leeway',
  'allowed_redirect_uris',
  'oidc_scopes',
  'verbose_oidc_logging',
  'max_age',
  ...TOKEN_FIELD_NAMES,
  'policies',
  'ttl',
  'max_ttl',
  'period',
  'bound_cidrs',
];

interface JwtConfig extends JwtKeySource {
  boundIssuer: string;
  /** As given; empty means Vault's default, RS256. */
  jwtSupportedAlgs: string[];
  defaultRole: string;
}

type ClaimValue = string | number | boolean;

interface JwtRole {
  boundAudiences: string[];
  boundSubject: string;
  boundClaims: Record<string, ClaimValue | ClaimValue[]>;
  boundClaimsType: 'string' | 'glob';
  claimMappings: Record<string, string>;
  userClaim: string;
  userClaimJsonPointer: boolean;
  groupsClaim: string;
  /** Seconds; 0: Vault's default; negative: none. */
  clockSkewLeeway: number;
  expirationLeeway: number;
  notBeforeLeeway: number;
  /** OIDC-only fields, which Vault also keeps on jwt roles and ignores there: stored and read back. */
  allowedRedirectUris: string[];
  oidcScopes: string[];
  verboseOidcLogging: boolean;
  maxAge: number;
  token: TokenFields;
}

/** Vault's JWT auth method (the `jwt` role type): a login presents a JWT signed by a configured key. */
export class JwtMethod implements AuthMethod {
  /** The keys of the stored config's key source, kept while the source stays the same (a remote JWKS is cached inside). */
  private keys: { source: string; keys: JwtKeys } | undefined;

  constructor(
    private readonly view: BarrierView,
    private readonly deps: AuthMethodDeps,
  ) {}

  isLoginPath(path: string): boolean {
    return path === 'login';
  }

  async loginSourceFields(metadata: Record<string, string>): Promise<TokenFields | undefined> {
    return (await readEntry<JwtRole>(this.view, 'role', metadata.role ?? '', ROLE_NAME))?.token;
  }

  async exists(path: string): Promise<boolean> {
    const name = entryName(path, 'role');
    if (name) return entryExists(this.view, 'role', name, ROLE_NAME);
    return path === 'config' && (await this.view.exists('config'));
  }

  async handle(req: AuthRequest): Promise<AuthResponse | undefined> {
    const { operation, path } = req;
    if (path === 'login' && operation === 'update') return this.login(req);
    if (path === 'config' && operation === 'read') {
      const config = await this.view.getJson<JwtConfig>('config');
      if (!config) throw new NotFoundError('');
      return { data: configData(config) };
    }
    if (path === 'config' && operation === 'update') return this.writeConfig(req.data);
    if ((path === 'role' || path === 'role/') && operation === 'list') return listEntryNames(this.view, 'role');
    const name = entryName(path, 'role');
    if (name !== undefined) {
      if (operation === 'read') {
        const role = await readEntry<JwtRole>(this.view, 'role', name, ROLE_NAME);
        if (!role) throw new NotFoundError('');
        return { data: roleData(role) };
      }
      if (operation === 'update') return this.writeRole(roleName(name), req.data);
      if (operation === 'delete') {
        await this.view.delete(`role/${roleName(name)}`);
        return undefined;
      }
    }
    if (path.startsWith('oidc/')) throw new InvalidRequestError(NO_OIDC);
    return refuseUnserved(operation, path, ['login', 'config', 'role', 'role/'].includes(path) || name !== undefined);
  }

  private async writeConfig(body: Record<string, unknown>): Promise<AuthResponse | undefined> {
    for (const [field, value] of Object.entries(body)) {
      if ((field.startsWith('oidc_') || field === 'provider_config') && !isUnset(value)) throw new InvalidRequestError(NO_OIDC);
    }
    if (!isUnset(body.jwks_pairs)) throw new InvalidRequestError('jwks_pairs is not offered: configure one jwks_url (with jwks_ca_pem if needed)');
    if (!isUnset(body.unsupported_critical_cert_extensions)) {
      throw new InvalidRequestError('unsupported_critical_cert_extensions is not offered: keys are taken from the JWKS entries themselves, never from x5c certificates');
    }
    const config: JwtConfig = {
      jwtValidationPubkeys: isUnset(body.jwt_validation_pubkeys) ? [] : parseStringList(body.jwt_validation_pubkeys, 'jwt_validation_pubkeys'),
      jwksUrl: optionalString(body.jwks_url, 'jwks_url'),
      jwksCaPem: optionalString(body.jwks_ca_pem, 'jwks_ca_pem'),
      boundIssuer: optionalString(body.bound_issuer, 'bound_issuer'),
      jwtSupportedAlgs: isUnset(body.jwt_supported_algs) ? [] : parseStringList(body.jwt_supported_algs, 'jwt_supported_algs'),
      defaultRole: optionalString(body.default_role, 'default_role'),
    };
    const unknownAlg = config.jwtSupportedAlgs.find((alg) => !SUPPORTED_ALGORITHMS.includes(alg));
    if (unknownAlg !== undefined) throw new InvalidRequestError(`jwt_supported_algs: "${unknownAlg}" is not one of ${SUPPORTED_ALGORITHMS.join(', ')}`);
    if ((config.jwtValidationPubkeys.length > 0) === (config.jwksUrl !== '')) {
      throw new InvalidRequestError('exactly one of jwt_validation_pubkeys or jwks_url must be set (OIDC discovery is not offered)');
    }
    // Checked before storing, as Vault does: the keys parse, the JWKS URL answers with keys.
    const keys = await JwtKeys.create(config);
    await this.view.put('config', jsonBuffer(config));
    this.keys = { source: keySourceId(config), keys };
    const oidcFields = Object.keys(body).filter((field) => field.startsWith('oidc_'));
    return warnIgnoredFields(undefined, body, [...CONFIG_FIELDS, ...oidcFields]);
  }

  /** The keys for `config`, built again only when its key source differs from the cached one's (a config written elsewhere, say). */
  private async keysFor(config: JwtConfig): Promise<JwtKeys> {
    const source = keySourceId(config);
    if (this.keys?.source !== source) this.keys = { source, keys: await JwtKeys.create(config) };
    return this.keys.keys;
  }

  private async writeRole(name: string, body: Record<string, unknown>): Promise<AuthResponse | undefined> {
    const roleType = body.role_type ?? 'jwt';
    if (roleType === 'oidc') throw new InvalidRequestError(NO_OIDC);
    if (roleType !== 'jwt') throw new InvalidRequestError('role_type must be "jwt"');
    const old = await this.view.getJson<JwtRole>(`role/${name}`);
    const given = (field: string) => body[field] !== undefined && body[field] !== null;
    const role: JwtRole = {
      boundAudiences: given('bound_audiences') ? parseStringList(body.bound_audiences, 'bound_audiences') : (old?.boundAudiences ?? []),
      boundSubject: given('bound_subject') ? optionalString(body.bound_subject, 'bound_subject') : (old?.boundSubject ?? ''),
      boundClaimsType: given('bound_claims_type') ? claimsType(body.bound_claims_type) : (old?.boundClaimsType ?? 'string'),
      boundClaims: old?.boundClaims ?? {},
      claimMappings: given('claim_mappings') ? claimMappings(body.claim_mappings) : (old?.claimMappings ?? {}),
      userClaim: given('user_claim') ? optionalString(body.user_claim, 'user_claim') : (old?.userClaim ?? 'sub'),
      userClaimJsonPointer: optionalBool(body.user_claim_json_pointer, 'user_claim_json_pointer') ?? old?.userClaimJsonPointer ?? false,
      groupsClaim: given('groups_claim') ? optionalString(body.groups_claim, 'groups_claim') : (old?.groupsClaim ?? ''),
      clockSkewLeeway: given('clock_skew_leeway') ? leeway(body.clock_skew_leeway, 'clock_skew_leeway') : (old?.clockSkewLeeway ?? DEFAULT_CLOCK_SKEW_LEEWAY),
      expirationLeeway: given('expiration_leeway') ? leeway(body.expiration_leeway, 'expiration_leeway') : (old?.expirationLeeway ?? DEFAULT_CLAIM_LEEWAY),
      notBeforeLeeway: given('not_before_leeway') ? leeway(body.not_before_leeway, 'not_before_leeway') : (old?.notBeforeLeeway ?? DEFAULT_CLAIM_LEEWAY),
      allowedRedirectUris: given('allowed_redirect_uris') ? parseStringList(body.allowed_redirect_uris, 'allowed_redirect_uris') : (old?.allowedRedirectUris ?? []),
      oidcScopes: given('oidc_scopes') ? parseStringList(body.oidc_scopes, 'oidc_scopes') : (old?.oidcScopes ?? []),
      verboseOidcLogging: optionalBool(body.verbose_oidc_logging, 'verbose_oidc_logging') ?? old?.verboseOidcLogging ?? false,
      maxAge: given('max_age') ? parseDuration(body.max_age, 'max_age') : (old?.maxAge ?? 0),
      token: parseTokenFields(body, old?.token, ['policies', 'ttl', 'max_ttl', 'period', 'bound_cidrs']),
    };
    if (given('bound_claims')) role.boundClaims = boundClaims(body.bound_claims, role.boundClaimsType);
    else if (role.boundClaimsType === 'glob') boundClaims(role.boundClaims, 'glob');
    if (role.userClaim === '') throw new InvalidRequestError('user_claim cannot be empty: it names the claim that identifies the user (default "sub")');
    if (role.boundAudiences.length === 0 && role.boundSubject === '' && Object.keys(role.boundClaims).length === 0) {
      throw new InvalidRequestError('must have at least one bound constraint when creating/updating a role (bound_audiences, bound_subject or bound_claims)');
    }
    await this.view.put(`role/${name}`, jsonBuffer(role));
    return warnIgnoredFields(undefined, body, ROLE_FIELDS);
  }

  private async login(req: AuthRequest): Promise<AuthResponse> {
    const config = await this.view.getJson<JwtConfig>('config');
    if (!config) throw new InvalidRequestError('could not load configuration: write auth config (jwt_validation_pubkeys or jwks_url) first');
    const requested = req.data.role ?? '';
    if (typeof requested !== 'string') throw new InvalidRequestError('role must be a string');
    const name = requested || config.defaultRole;
    if (!name) throw new InvalidRequestError('missing role');
    const role = await readEntry<JwtRole>(this.view, 'role', name, ROLE_NAME);
    if (!role) throw new InvalidRequestError(`role "${name}" could not be found`);
    const token = req.data.jwt;
    if (typeof token !== 'string' || token === '') throw new InvalidRequestError('missing token: send the JWT as "jwt"');

    const claims = await verifyJwt(token, await this.keysFor(config), {
      algorithms: config.jwtSupportedAlgs.length > 0 ? config.jwtSupportedAlgs : ['RS256'],
      issuer: config.boundIssuer,
      subject: role.boundSubject,
      audiences: role.boundAudiences,
      now: this.deps.now(),
      clockSkewLeeway: effectiveLeeway(role.clockSkewLeeway, DEFAULT_CLOCK_SKEW_LEEWAY),
      expirationLeeway: effectiveLeeway(role.expirationLeeway, DEFAULT_CLAIM_LEEWAY),
      notBeforeLeeway: effectiveLeeway(role.notBeforeLeeway, DEFAULT_CLAIM_LEEWAY),
    });

    if (role.token.boundCidrs.length > 0 && !cidrContains(role.token.boundCidrs, req.connection.remoteAddress)) throw new PermissionDeniedError();
    const audience = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (audience.length > 0 && role.boundAudiences.length === 0) {
      throw new InvalidRequestError('audience claim found in JWT but no audiences bound to the role');
    }
    checkBoundClaims(role, claims);
    const user = role.userClaimJsonPointer ? claimAt(claims, role.userClaim) : claims[role.userClaim];
    if (user === undefined || user === null) throw new InvalidRequestError(`claim "${role.userClaim}" not found in token`);
    if (typeof user !== 'string' && typeof user !== 'number') throw new InvalidRequestError(`claim "${role.userClaim}" could not be converted to string`);
    // Groups feed Vault's identity store, which keyward does not have; Vault still requires the claim when one is named.
    if (role.groupsClaim && claimAt(claims, role.groupsClaim) === undefined) throw new InvalidRequestError(`"${role.groupsClaim}" claim not found in token`);

    const metadata: Record<string, string> = { role: name };
    for (const [claim, key] of Object.entries(role.claimMappings)) {
      const value = claimAt(claims, claim);
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        throw new InvalidRequestError(`error converting claim "${claim}" to string for claim_mappings`);
      }
      metadata[key] = String(value);
    }
    return { auth: loginAuthOf(role.token, `jwt-${user}`, metadata) };
  }
}

/** A claim by name, or by JSON pointer when the name starts with "/" (as Vault's claim lookups). */
function claimAt(claims: Record<string, unknown>, name: string): unknown {
  if (!name.startsWith('/')) return claims[name];
  let at: unknown = claims;
  for (const raw of name.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/** Every bound claim must be present and one of its values equal (or, for "glob", match) one of the token's. */
function checkBoundClaims(role: JwtRole, claims: Record<string, unknown>): void {
  for (const [claim, expected] of Object.entries(role.boundClaims)) {
    const actual = claimAt(claims, claim);
    if (actual === undefined || actual === null) throw new InvalidRequestError(`error validating claims: claim "${claim}" is missing`);
    const actualValues = Array.isArray(actual) ? actual : [actual];
    const expectedValues = Array.isArray(expected) ? expected : [expected];
    const matches = (want: ClaimValue, got: unknown) =>
      role.boundClaimsType === 'glob' && typeof want === 'string' && typeof got === 'string' ? globMatch(want, got) : want === got;
    if (!expectedValues.some((want) => actualValues.some((got) => matches(want, got)))) {
      throw new InvalidRequestError(`error validating claims: claim "${claim}" does not match any associated bound claim values`);
    }
  }
}

function keySourceId(config: JwtKeySource): string {
  return JSON.stringify([config.jwtValidationPubkeys, config.jwksUrl, config.jwksCaPem]);
}

function effectiveLeeway(stored: number, byDefault: number): number {
  return stored < 0 ? 0 : stored === 0 ? byDefault : stored;
}

function roleName(raw: string): string {
  if (ROLE_NAME.test(raw)) return raw;
  throw new InvalidRequestError(
    `role name "${raw}" is not valid: names are letters, digits, _ . and -, starting and ending with a letter, digit or _, at most 128 characters`,
  );
}

function claimsType(v: unknown): JwtRole['boundClaimsType'] {
  if (v === 'string' || v === 'glob') return v;
  throw new InvalidRequestError('bound_claims_type must be "string" or "glob"');
}

function boundClaims(v: unknown, type: JwtRole['boundClaimsType']): JwtRole['boundClaims'] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InvalidRequestError('bound_claims must be an object of claim names to a value or a list of values');
  }
  const scalar = (x: unknown) => (type === 'glob' ? typeof x === 'string' : typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean');
  const kind = type === 'glob' ? 'a string or a list of strings (bound_claims_type is "glob")' : 'a string, number, boolean or a list of them';
  for (const [claim, value] of Object.entries(v)) {
    const ok = Array.isArray(value) ? value.length > 0 && value.every(scalar) : scalar(value);
    if (!ok) throw new InvalidRequestError(`bound_claims: the value for "${claim}" must be ${kind}`);
  }
  return v as JwtRole['boundClaims'];
}

function claimMappings(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InvalidRequestError('claim_mappings must be an object of claim names to metadata keys');
  }
  const targets = new Set<string>();
  for (const [claim, key] of Object.entries(v)) {
    if (typeof key !== 'string' || key === '') throw new InvalidRequestError(`claim_mappings: the metadata key for "${claim}" must be a non-empty string`);
    if (key === 'role') throw new InvalidRequestError('claim_mappings cannot map a claim to "role": that metadata key holds the role name');
    if (targets.has(key)) throw new InvalidRequestError(`claim_mappings: multiple claims are mapped to metadata key "${key}"`);
    targets.add(key);
  }
  return v as Record<string, string>;
}

/** A leeway in seconds (or a duration such as "5m"); negative disables it, as Vault's -1. */
function leeway(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v < 0) return -1;
  if (typeof v === 'string' && /^-\d+$/.test(v.trim())) return -1;
  return parseDuration(v, field);
}

function optionalString(v: unknown, field: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new InvalidRequestError(`${field} must be a string`);
  return v.trim();
}

function configData(config: JwtConfig): Record<string, unknown> {
  return {
    jwt_validation_pubkeys: config.jwtValidationPubkeys,
    jwks_url: config.jwksUrl,
    jwks_ca_pem: config.jwksCaPem,
    bound_issuer: config.boundIssuer,
    jwt_supported_algs: config.jwtSupportedAlgs,
    default_role: config.defaultRole,
    oidc_discovery_url: '',
    oidc_discovery_ca_pem: '',
    oidc_client_id: '',
    oidc_response_mode: '',
    oidc_response_types: [],
    provider_config: {},
  };
}

function roleData(role: JwtRole): Record<string, unknown> {
  return {
    role_type: 'jwt',
    bound_audiences: role.boundAudiences,
    bound_subject: role.boundSubject,
    bound_claims_type: role.boundClaimsType,
    bound_claims: role.boundClaims,
    claim_mappings: role.claimMappings,
    user_claim: role.userClaim,
    user_claim_json_pointer: role.userClaimJsonPointer,
    groups_claim: role.groupsClaim,
    clock_skew_leeway: role.clockSkewLeeway,
    expiration_leeway: role.expirationLeeway,
    not_before_leeway: role.notBeforeLeeway,
    allowed_redirect_uris: role.allowedRedirectUris,
    oidc_scopes: role.oidcScopes,
    verbose_oidc_logging: role.verboseOidcLogging,
    max_age: role.maxAge,
    ...tokenFieldsData(role.token),
    policies: [...role.token.policies],
  };
}
