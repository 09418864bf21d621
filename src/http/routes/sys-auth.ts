import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthEntry } from '../../core/auth-mounts.js';
import type { Core } from '../../core/core.js';
import { InvalidRequestError } from '../../core/errors.js';
import { isUnset } from '../../core/fields.js';
import { mountPath, requestSpellings } from '../../core/names.js';
import type { Capability } from '../../core/policy.js';
import { sysReply } from '../envelope.js';
import { objectField, refuseUnsupported, stringField, ttlsFrom, UNSUPPORTED_CONFIG, UNSUPPORTED_MOUNT } from './sys-mounts.js';

type Body = Record<string, unknown>;

/** `sys/auth/<path>/tune`: the method path it names. */
const TUNE = /^(.+)\/tune$/;
/** Vault's token_type for a mount: keyward's methods issue service tokens, which is also the default. */
const SERVICE_TOKEN_TYPES = new Set(['default-service', 'service', 'default']);

/** One method as sys/auth lists it (Vault's shape). */
function describe(e: AuthEntry): Record<string, unknown> {
  return {
    type: e.type,
    description: e.description,
    accessor: e.accessor,
    uuid: e.uuid,
    config: { default_lease_ttl: e.config.default_lease_ttl, max_lease_ttl: e.config.max_lease_ttl, force_no_cache: false, token_type: 'default-service' },
    options: null,
    local: false,
    seal_wrap: false,
    external_entropy_access: false,
    plugin_version: '',
  };
}

/** Vault's answer to GET sys/auth/<path>/tune: the TTLs in force (the server's where the method has none of its own). */
function tuneInfo(core: Core, e: AuthEntry): Record<string, unknown> {
  return {
    description: e.description,
    default_lease_ttl: e.config.default_lease_ttl || core.systemTtls.defaultTtl,
    max_lease_ttl: e.config.max_lease_ttl || core.systemTtls.maxTtl,
    force_no_cache: false,
    token_type: 'default-service',
  };
}

/** A mount's `token_type`: service tokens only (batch tokens are refused by name). */
function checkMountTokenType(v: unknown): void {
  if (isUnset(v) || (typeof v === 'string' && SERVICE_TOKEN_TYPES.has(v))) return;
  if (v === 'batch' || v === 'default-batch') {
    throw new InvalidRequestError('batch tokens are not offered: keyward issues service tokens; omit token_type or use "default-service"');
  }
  throw new InvalidRequestError('token_type must be "default-service" or "service"');
}

/** The fields of a mount config or tune request, checked: TTLs, token_type and the unsupported ones. */
function checkConfigFields(fields: Body, where: string): void {
  checkMountTokenType(fields.token_type);
  refuseUnsupported({ ...fields, token_type: undefined }, where, UNSUPPORTED_CONFIG);
}

/**
 * The stored method path (`approle/`) a sys/auth/<path> request names, once the token holds
 * `capability` with sudo on both spellings of it ("approle" and "approle/"), as Vault requires.
 */
async function requestedPath(core: Core, req: FastifyRequest<{ Params: { '*': string } }>, capability: Capability): Promise<string> {
  const path = mountPath(req.params['*']);
  const aclPaths = requestSpellings(path).map((spelling) => `sys/auth/${spelling}`);
  await core.policies.requireOnEvery(req.tokenEntry!.policies, aclPaths, capability, true);
  return path;
}

/** The method path of sys/auth/<path>/tune; "approle//tune" would be another spelling the ACL did not see, so it is refused. */
function tunedPath(given: string): string {
  if (given.endsWith('/')) throw new InvalidRequestError(`tune the auth method as "sys/auth/${given.replace(/\/+$/, '')}/tune", without a "/" before "/tune"`);
  return mountPath(given);
}

/** sys/auth: list, enable, read, tune and disable auth methods (Vault's paths and shapes; hvac and node-vault use them). */
export async function authMountRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  app.get('/v1/sys/auth', async (req) => sysReply(req.id, Object.fromEntries(core.auth.enabled().map((e) => [e.path, describe(e)]))));

  app.get<{ Params: { '*': string } }>('/v1/sys/auth/*', async (req) => {
    const tune = TUNE.exec(req.params['*']);
    if (tune) {
      const path = tunedPath(tune[1]!);
      const e = core.auth.enabledAt(path);
      if (!e) throw new InvalidRequestError(`cannot fetch sysview for path "auth/${path}"`);
      return sysReply(req.id, tuneInfo(core, e));
    }
    const path = await requestedPath(core, req, 'read');
    const e = core.auth.enabledAt(path);
    if (!e) throw new InvalidRequestError(`no auth method enabled at "${path}"`);
    return sysReply(req.id, describe(e));
  });

  app.route<{ Params: { '*': string }; Body: Body }>({
    method: ['PUT', 'POST'],
    url: '/v1/sys/auth/*',
    schema: { body: { type: 'object' } },
    handler: async (req, reply) => {
      const b = req.body;
      const tune = TUNE.exec(req.params['*']);
      if (tune) {
        const path = tunedPath(tune[1]!);
        checkConfigFields(b, '');
        const e = core.auth.enabledAt(path);
        if (!e) throw new InvalidRequestError(`tune of path "auth/${path}" failed: no auth method enabled there`);
        await core.tuneAuth(path, stringField(b.description, 'description'), ttlsFrom(b, e.config));
        return reply.code(204).send();
      }
      refuseUnsupported(b, '', UNSUPPORTED_MOUNT);
      const type = stringField(b.type, 'type');
      if (!type) throw new InvalidRequestError('missing required field "type": the auth method to enable (approle, userpass, cert or jwt)');
      const config = objectField(b.config, 'config');
      checkConfigFields(config, 'config.');
      if (!isUnset(b.options)) throw new InvalidRequestError("keyward's auth methods take no options; leave out \"options\"");
      const ttls = ttlsFrom(config, undefined);
      const description = stringField(b.description, 'description') ?? '';
      await core.enableAuth(await requestedPath(core, req, 'update'), type, description, ttls);
      return reply.code(204).send();
    },
  });

  app.delete<{ Params: { '*': string } }>('/v1/sys/auth/*', async (req, reply) => {
    await core.disableAuth(await requestedPath(core, req, 'delete'));
    return reply.code(204).send();
  });
}
