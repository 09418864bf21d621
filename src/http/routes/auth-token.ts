import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError, NotFoundError, PermissionDeniedError } from '../../core/errors.js';
import { optionalBool } from '../../core/fields.js';
import { policyName } from '../../core/names.js';
import { parseDuration } from '../../core/rotation.js';
import { roleData, roleName } from '../../core/token-roles.js';
import type { CreateTokenRequest, TokenEntry, TokenStore } from '../../core/token-store.js';
import { listRequested } from '../auth.js';
import { envelope } from '../envelope.js';

type Body = Record<string, unknown>;

/**
 * The policy names a token create request asks for: a list of strings or one comma-separated
 * string. Each name must be canonical as given, as everywhere else: the subset check against the
 * parent's policies and the ACL both take a name as the string it is, so a policy has one spelling.
 */
function policyList(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  const names = typeof v === 'string' ? (v === '' ? [] : v.split(',')) : v;
  if (!Array.isArray(names) || !names.every((x) => typeof x === 'string')) throw new InvalidRequestError('policies must be a list of strings');
  return names.map(policyName);
}

function optionalSeconds(v: unknown, field: string): number | undefined {
  return v === undefined || v === null || v === '' ? undefined : parseDuration(v, field);
}

function requiredString(v: unknown, field: string): string {
  if (typeof v !== 'string' || !v) throw new InvalidRequestError(`missing required field "${field}"`);
  return v;
}

/** Vault's create fields keyward does not offer, refused when set rather than ignored. */
const UNOFFERED_CREATE: Record<string, string> = {
  id: "choosing a token's id is not offered: keyward generates every token; leave out id",
  entity_alias: 'entity aliases are not offered: keyward has no identity store; leave out entity_alias',
};

/** The token type a create asks for: keyward issues service tokens only. */
function checkTokenType(v: unknown): void {
  if (v === undefined || v === null || v === '' || v === 'service' || v === 'default') return;
  if (v === 'batch') throw new InvalidRequestError('batch tokens are not offered: keyward issues service tokens; omit type or use type=service');
  throw new InvalidRequestError('type must be "service" or "default"');
}

function createRequest(b: Body, orphan: boolean): CreateTokenRequest {
  for (const [field, refusal] of Object.entries(UNOFFERED_CREATE)) {
    if (b[field] !== undefined && b[field] !== null && b[field] !== '') throw new InvalidRequestError(refusal);
  }
  checkTokenType(b.type);
  const meta = b.meta;
  if (meta !== undefined && meta !== null && (typeof meta !== 'object' || Array.isArray(meta) || Object.values(meta).some((x) => typeof x !== 'string'))) {
    throw new InvalidRequestError('meta must be an object of strings');
  }
  const numUses = b.num_uses === undefined ? undefined : Number(b.num_uses);
  if (numUses !== undefined && (!Number.isInteger(numUses) || numUses < 0)) throw new InvalidRequestError('num_uses must be a non-negative integer');
  return {
    policies: policyList(b.policies),
    ttl: optionalSeconds(b.ttl, 'ttl'),
    explicit_max_ttl: optionalSeconds(b.explicit_max_ttl, 'explicit_max_ttl'),
    num_uses: numUses,
    renewable: optionalBool(b.renewable, 'renewable'),
    no_parent: orphan || optionalBool(b.no_parent, 'no_parent'),
    no_default_policy: optionalBool(b.no_default_policy, 'no_default_policy'),
    display_name: typeof b.display_name === 'string' ? b.display_name : undefined,
    meta: (meta as Record<string, string> | undefined) ?? undefined,
    period: optionalSeconds(b.period, 'period'),
  };
}

/** Vault's `auth` block of a reply that issues or renews a token. */
export function authBlock(tokens: TokenStore, token: string, e: TokenEntry): Record<string, unknown> {
  return {
    client_token: token,
    accessor: e.accessor,
    policies: e.policies,
    token_policies: e.policies,
    metadata: e.meta ?? {},
    lease_duration: tokens.remainingTtl(e),
    renewable: e.renewable,
    entity_id: '',
    token_type: 'service',
    orphan: e.parent === '',
    num_uses: e.num_uses,
    mfa_requirement: null,
  };
}

/** auth/token/*: Vault's token endpoints and response shapes (node-vault's token commands use them). */
export async function tokenRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const tokens = core.tokens;

  const lookupData = (e: TokenEntry, token: string) => ({
    accessor: e.accessor,
    creation_time: e.creation_time,
    creation_ttl: e.ttl,
    display_name: e.display_name,
    entity_id: '',
    expire_time: e.expire_time ? new Date(e.expire_time).toISOString() : null,
    explicit_max_ttl: e.explicit_max_ttl,
    id: token,
    issue_time: new Date(e.creation_time * 1000).toISOString(),
    meta: e.meta ?? {},
    num_uses: e.num_uses,
    orphan: e.parent === '',
    path: e.path,
    policies: e.policies,
    renewable: e.renewable,
    ttl: tokens.remainingTtl(e),
    type: 'service',
    // As Vault: shown only when the token has them.
    ...(e.period ? { period: e.period } : {}),
    ...(e.bound_cidrs?.length ? { bound_cidrs: e.bound_cidrs } : {}),
  });

  const self = (req: FastifyRequest): TokenEntry => req.tokenEntry!;
  const body = (req: FastifyRequest): Body => (req.body as Body | undefined) ?? {};

  /** Without a role, an orphan (from auth/token/create) and a period need root or sudo on auth/token/create, as in Vault. */
  const requireSudo = async (parent: TokenEntry, what: string) => {
    if (parent.policies.includes('root')) return;
    const acl = await core.policies.aclFor(parent.policies);
    if (!acl.allows('auth/token/create', 'update', true)) throw new PermissionDeniedError(`root or sudo privileges required to create ${what}`);
  };

  const create = (orphan: boolean) => async (req: FastifyRequest) => {
    const parent = self(req);
    const request = createRequest(body(req), orphan);
    if (request.no_parent && !orphan) await requireSudo(parent, 'an orphan token');
    if (request.period) await requireSudo(parent, 'a periodic token');
    const { token, entry } = await tokens.create(parent, request, orphan ? 'auth/token/create-orphan' : 'auth/token/create');
    return { ...envelope(req.id, null), auth: authBlock(tokens, token, entry) };
  };
  app.post('/v1/auth/token/create', create(false));
  app.post('/v1/auth/token/create-orphan', create(true));

  // A role decides what its tokens may be (policies, orphan, period), so creating from one needs no sudo.
  app.post<{ Params: { role_name: string } }>('/v1/auth/token/create/:role_name', async (req) => {
    const role = await tokens.roles.require(req.params.role_name);
    const parent = self(req);
    const request = createRequest(body(req), false);
    if (request.no_parent) await requireSudo(parent, 'an orphan token');
    if (request.period && !role.token_period) await requireSudo(parent, 'a periodic token');
    const path = `auth/token/create/${role.name}${role.path_suffix ? `/${role.path_suffix}` : ''}`;
    const { token, entry } = await tokens.create(parent, request, path, role);
    return { ...envelope(req.id, null), auth: authBlock(tokens, token, entry) };
  });

  app.get('/v1/auth/token/roles', { config: { lists: true } }, async (req) => {
    if (!listRequested(req)) throw new InvalidRequestError('list token roles with LIST or GET ?list=true');
    const keys = await tokens.roles.list();
    if (keys.length === 0) throw new NotFoundError('');
    return envelope(req.id, { keys });
  });
  app.get<{ Params: { role_name: string } }>('/v1/auth/token/roles/:role_name', async (req) => {
    const role = await tokens.roles.get(req.params.role_name);
    if (!role) throw new NotFoundError(`no token role named "${req.params.role_name}"`);
    return envelope(req.id, roleData(role));
  });
  app.post<{ Params: { role_name: string } }>('/v1/auth/token/roles/:role_name', async (req, reply) => {
    await tokens.roles.write(req.params.role_name, body(req));
    return reply.code(204).send();
  });
  app.delete<{ Params: { role_name: string } }>('/v1/auth/token/roles/:role_name', async (req, reply) => {
    await tokens.roles.delete(roleName(req.params.role_name));
    return reply.code(204).send();
  });

  app.get('/v1/auth/token/lookup-self', async (req) => envelope(req.id, lookupData(self(req), req.clientToken ?? '')));
  app.post('/v1/auth/token/lookup-self', async (req) => envelope(req.id, lookupData(self(req), req.clientToken ?? '')));
  app.post('/v1/auth/token/lookup', async (req) => {
    const token = requiredString(body(req).token, 'token');
    const entry = await tokens.lookup(token).catch(() => {
      throw new InvalidRequestError('bad token');
    });
    return envelope(req.id, lookupData(entry, token));
  });
  app.post('/v1/auth/token/lookup-accessor', async (req) => {
    const entry = await tokens.lookupAccessor(requiredString(body(req).accessor, 'accessor'));
    return envelope(req.id, lookupData(entry, ''));
  });

  const renew = async (req: FastifyRequest, entry: TokenEntry, token: string) => {
    const refusal = await core.authMethods.renewalRefusal(entry);
    if (refusal) throw new InvalidRequestError(refusal);
    const renewed = await tokens.renew(entry, optionalSeconds(body(req).increment, 'increment'));
    return { ...envelope(req.id, null), auth: authBlock(tokens, token, renewed) };
  };
  app.post('/v1/auth/token/renew-self', (req) => renew(req, self(req), req.clientToken ?? ''));
  app.post('/v1/auth/token/renew', async (req) => {
    const token = requiredString(body(req).token, 'token');
    const entry = await tokens.lookup(token).catch(() => {
      throw new InvalidRequestError('bad token');
    });
    return renew(req, entry, token);
  });
  // Renewing by accessor answers without the token itself, as Vault does.
  app.post('/v1/auth/token/renew-accessor', async (req) => renew(req, await tokens.lookupAccessor(requiredString(body(req).accessor, 'accessor')), ''));

  const revokeToken = (orphanChildren: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    const token = requiredString(body(req).token, 'token');
    // Revoking a token that is already gone succeeds, as in Vault.
    const entry = await tokens.lookup(token).catch(() => undefined);
    if (entry) await tokens.revoke(entry, orphanChildren);
    return reply.code(204).send();
  };
  app.post('/v1/auth/token/revoke', revokeToken(false));
  app.post('/v1/auth/token/revoke-orphan', revokeToken(true));
  app.post('/v1/auth/token/revoke-self', async (req, reply) => {
    await tokens.revoke(self(req), false);
    return reply.code(204).send();
  });
  app.post('/v1/auth/token/revoke-accessor', async (req, reply) => {
    await tokens.revoke(await tokens.lookupAccessor(requiredString(body(req).accessor, 'accessor')), false);
    return reply.code(204).send();
  });

  app.get('/v1/auth/token/accessors', { config: { lists: true } }, async (req) => {
    if (!listRequested(req)) throw new InvalidRequestError('list accessors with GET ?list=true');
    return envelope(req.id, { keys: await tokens.listAccessors() });
  });
}
