import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../core/core.js';
import { parseDuration } from '../core/rotation.js';
import { apiPath } from './auth.js';
import { envelope } from './envelope.js';
import { HttpError, toErrorReply } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Seconds from X-Vault-Wrap-TTL: the reply is wrapped when this is above 0. */
    wrapTtl?: number;
  }
}

/**
 * Reads X-Vault-Wrap-TTL ("60", "60s", "5m") into `req.wrapTtl`; an error for a malformed one, and
 * while sealed, when no wrapping token could be stored (the reply must not go out in clear).
 */
export function readWrapTtl(core: Core, req: FastifyRequest): HttpError | undefined {
  const header = req.headers['x-vault-wrap-ttl'];
  if (header === undefined) return undefined;
  let ttl: number;
  try {
    ttl = parseDuration(header, 'X-Vault-Wrap-TTL');
  } catch (err) {
    return new HttpError(400, (err as Error).message);
  }
  if (ttl > 0 && core.sealed) {
    return new HttpError(400, 'response wrapping (X-Vault-Wrap-TTL) needs an unsealed server to store the wrapping token; send the request without it');
  }
  req.wrapTtl = ttl;
  return undefined;
}

/**
 * Wraps the reply of any request that asked for it: a 200 JSON body is kept in a new wrapping
 * token's cubbyhole exactly as it would have been sent, and the client gets Vault's envelope with
 * `wrap_info` instead. Errors and bodiless replies go out as they are, and so does a reply that
 * already is a wrapping (sys/wrapping/rewrap's) or that another node produced (a standby's
 * forwarded reply was wrapped there). Registered before the audit hook, which then records the
 * envelope, its token HMAC'd.
 */
export function registerResponseWrapping(app: FastifyInstance, core: Core): void {
  app.addHook('onSend', (req, reply, payload, done) => {
    if (!req.wrapTtl || req.forwarded || req.method === 'HEAD' || reply.statusCode !== 200 || typeof payload !== 'string') return done(null, payload);
    const body = wrappableBody(reply, payload);
    if (!body) return done(null, payload);
    const auth = body.auth as { accessor?: unknown } | null | undefined;
    const wrappedAccessor = typeof auth?.accessor === 'string' ? auth.accessor : '';
    core.wrapping.wrap(payload, req.wrapTtl, apiPath(req), wrappedAccessor).then(
      (wrapInfo) => done(null, JSON.stringify({ ...envelope('', null), wrap_info: wrapInfo, mount_type: '' })),
      (err: unknown) => {
        // The reply is replaced by the error: never sent in clear when a wrap was asked for.
        const out = toErrorReply(err, apiPath(req));
        if (out.serverFault) req.log.error({ err, reqId: req.id }, 'wrapping the reply failed');
        reply.code(out.status).type('application/json');
        done(null, JSON.stringify({ errors: out.errors }));
      },
    );
  });
}

/** The reply's JSON object when it is one that gets wrapped. */
function wrappableBody(reply: FastifyReply, payload: string): Record<string, unknown> | undefined {
  const type = reply.getHeader('content-type');
  if (typeof type !== 'string' || !type.startsWith('application/json')) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const record = body as Record<string, unknown>;
  return record.wrap_info ? undefined : record;
}
