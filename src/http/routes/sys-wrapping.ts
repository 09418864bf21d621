import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError } from '../../core/errors.js';
import { clientToken } from '../auth.js';
import { clientAddress } from '../forwarded-client.js';
import { envelope } from '../envelope.js';

type Body = Record<string, unknown>;

/** The request body as an object (sys/wrapping/wrap wraps it whole). */
function objectBody(req: FastifyRequest): Body {
  const body = req.body;
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequestError('request body must be a JSON object');
  return body as Body;
}

/** The wrapping token a request names: the body's `token`, else the client token (Vault's rule). */
function wrappingToken(req: FastifyRequest): string {
  const given = objectBody(req).token;
  if (given !== undefined && given !== null && typeof given !== 'string') throw new InvalidRequestError('"token" must be a string');
  const token = given || clientToken(req);
  if (!token) throw new InvalidRequestError('missing "token" value in input');
  return token;
}

/**
 * sys/wrapping/*: Vault's response-wrapping endpoints. Unwrap and rewrap check the wrapping token
 * first (400 "not valid" whatever the caller may do, as Vault answers), then the caller's token
 * and policy; lookup needs no token, as in Vault. Wrap is an ordinary route: its reply is wrapped
 * by the response-wrapping hook like any other.
 */
export async function wrappingRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  /** Authorizes the caller (the wrapping token itself, or another token) for update on `path`, as the guard does for other routes. */
  const authorizeCaller = async (req: FastifyRequest, path: string) => {
    req.clientToken = clientToken(req);
    req.tokenEntry = await core.authorize(req.clientToken, async () => ({ capability: 'update', path, sudo: false }), clientAddress(req));
  };

  app.post('/v1/sys/wrapping/wrap', async (req) => {
    if (!req.wrapTtl) throw new InvalidRequestError('endpoint requires response wrapping to be used (set X-Vault-Wrap-TTL)');
    return envelope(req.id, objectBody(req));
  });

  app.post('/v1/sys/wrapping/lookup', { config: { access: 'wrapping' } }, async (req) => {
    return envelope(req.id, await core.wrapping.lookup(wrappingToken(req)));
  });

  app.post('/v1/sys/wrapping/unwrap', { config: { access: 'wrapping' } }, async (req, reply) => {
    const token = wrappingToken(req);
    await core.wrapping.check(token);
    await authorizeCaller(req, 'sys/wrapping/unwrap');
    // The reply exactly as the wrapped request would have had it.
    return reply.type('application/json').send(await core.wrapping.unwrap(token));
  });

  app.post('/v1/sys/wrapping/rewrap', { config: { access: 'wrapping' } }, async (req) => {
    const token = wrappingToken(req);
    await core.wrapping.check(token);
    await authorizeCaller(req, 'sys/wrapping/rewrap');
    return { ...envelope('', null), wrap_info: await core.wrapping.rewrap(token), mount_type: '' };
  });
}
