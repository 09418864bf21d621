import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError, PermissionDeniedError } from '../../core/errors.js';
import { optionalBool } from '../../core/fields.js';
import { policyName } from '../../core/names.js';
import { parseDuration } from '../../core/rotation.js';
import type { CreateTokenRequest, TokenEntry } from '../../core/token-store.js';
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

function createRequest(b: Body, orphan: boolean): CreateTokenRequest {
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
  };
}

/** auth/token/*: Vault's token endpoints and response shapes (node-vault's token commands use them). */
export async function tokenRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const tokens = core.tokens;

  const authBlock = (token: string, e: TokenEntry) => ({
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
  });

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
  });

  const self = (req: FastifyRequest): TokenEntry => req.tokenEntry!;
  const body = (req: FastifyRequest): Body => (req.body as Body | undefined) ?? {};

  const create = (orphan: boolean) => async (req: FastifyRequest) => {
    const parent = self(req);
    const request = createRequest(body(req), orphan);
    if (request.no_parent && !orphan && !parent.policies.includes('root')) {
      const acl = await core.policies.aclFor(parent.policies);
      if (!acl.allows('auth/token/create', 'update', true)) throw new PermissionDeniedError('root or sudo privileges required to create an orphan token');
    }
    const { token, entry } = await tokens.create(parent, request, orphan ? 'auth/token/create-orphan' : 'auth/token/create');
    return { ...envelope(req.id, null), auth: authBlock(token, entry) };
  };
  app.post('/v1/auth/token/create', create(false));
  app.post('/v1/auth/token/create-orphan', create(true));

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
    const renewed = await tokens.renew(entry, optionalSeconds(body(req).increment, 'increment'));
    return { ...envelope(req.id, null), auth: authBlock(token, renewed) };
  };
  app.post('/v1/auth/token/renew-self', (req) => renew(req, self(req), req.clientToken ?? ''));
  app.post('/v1/auth/token/renew', async (req) => {
    const token = requiredString(body(req).token, 'token');
    const entry = await tokens.lookup(token).catch(() => {
      throw new InvalidRequestError('bad token');
    });
    return renew(req, entry, token);
  });

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
