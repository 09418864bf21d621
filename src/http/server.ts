import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { LISTENER_LIMITS, type ListenerLimits } from '../config/config.js';
import type { Core } from '../core/core.js';
import { registerAudit } from './audit-hooks.js';
import { apiPath, guard } from './auth.js';
import { ClientRateLimiter } from './rate-limit.js';
import { HttpError, toErrorReply } from './errors.js';
import { acceptForwardedClient, claimsForwardedClient, clientAddress } from './forwarded-client.js';
import { parseJsonBody } from './json-body.js';
import { acceptListMethod, continueWithListMethod } from './list-method.js';
import { registerPathHelp } from './path-help.js';
import { readWrapTtl, registerResponseWrapping } from './response-wrapping.js';
import { cubbyholeRoutes } from './routes/cubbyhole.js';
import { wrappingRoutes } from './routes/sys-wrapping.js';
import { tokenRoutes } from './routes/auth-token.js';
import { authMethodRoutes } from './routes/auth-methods.js';
import { authMountRoutes } from './routes/sys-auth.js';
import { logicalRoutes } from './routes/logical.js';
import { mountRoutes } from './routes/sys-mounts.js';
import { generateRootRoutes } from './routes/sys-generate-root.js';
import { rekeyRoutes } from './routes/sys-rekey.js';
import { rotateRoutes } from './routes/sys-rotate.js';
import { policyRoutes } from './routes/sys-policy.js';
import { auditRoutes } from './routes/sys-audit.js';
import { sealRoutes } from './routes/sys-seal.js';
import { haRoutes } from './routes/sys-ha.js';
import { hsmRoutes } from './routes/sys-hsm.js';
import { uiRoutes } from './routes/ui.js';
import { notOfferedRoutes } from './routes/not-offered.js';
import { NODE_HEADER, StandbyRouter } from './standby.js';
import { unsupportedHeaderError } from './unsupported-headers.js';
import { UnknownTermError } from '../barrier/errors.js';
import { NotActiveError } from '../storage/backend.js';

export const BODY_LIMIT_BYTES = 1024 * 1024;
/**
 * Vault's error body, typed exactly `application/json` as Vault types it: hvac 0.11 reads error
 * bodies only then. Sent as bytes, since fastify appends a charset to a JSON type it serializes.
 */
function sendErrors(reply: FastifyReply, status: number, errors: string[]): FastifyReply {
  return reply.code(status).type('application/json').send(Buffer.from(JSON.stringify({ errors })));
}
/** Longer than any name a route takes as a parameter (a policy name is at most 128 characters). */
const MAX_PARAM_LENGTH = 1024;

const answeredAndClosing = new WeakSet<object>();

/**
 * As Vault's listener: ask every TLS client for a certificate but neither require nor verify it
 * here; the cert auth method verifies it against its own configured CAs at login.
 */
const CLIENT_CERTIFICATES = { requestCert: true, rejectUnauthorized: false };

export interface HttpOptions {
  log: Logger;
  /** Per-client limit on the key-share endpoints: a burst, then so many per second. */
  quorumRateLimit?: { burst: number; perSecond: number };
  https?: { cert: Buffer; key: Buffer; minVersion?: 'TLSv1.2' | 'TLSv1.3' };
  /** In a cluster: what a standby does with requests it does not serve itself. */
  standbyRequests?: 'forward' | 'redirect';
  /** Timeouts and the connection cap; LISTENER_LIMITS when not given. */
  limits?: ListenerLimits;
}

async function emptyBodyAsObject(req: FastifyRequest): Promise<void> {
  if (req.body === undefined && (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH')) req.body = {};
}

/** The fastify app: Vault's /v1 API over a Core. */
export function buildHttpServer(core: Core, opts: HttpOptions): FastifyInstance {
  // Per-request lines ("incoming request", "request completed") only at debug: at info they would
  // double the cost of a small request. The audit trail is a separate concern.
  const quieterThanWarn = opts.log.levelVal > 40;
  const verbose = opts.log.levelVal < 30;
  const limits = opts.limits ?? LISTENER_LIMITS;
  // Node checks its header and request timeouts only this often (30 s unless told).
  const timing = { headersTimeout: limits.readHeaderTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.readHeaderTimeoutMs / 2) };
  const serverOptions: FastifyServerOptions = {
    requestTimeout: limits.readTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    loggerInstance: opts.log.child({ component: 'http' }, { level: verbose || quieterThanWarn ? opts.log.level : 'warn' }),
    bodyLimit: BODY_LIMIT_BYTES,
    genReqId: () => randomUUID(),
    // A pino child per request (with redaction) cost more than a small request itself; below
    // debug, requests share the server's logger and errors carry the request id explicitly.
    childLoggerFactory: (logger, bindings, childOpts) => (verbose ? logger.child(bindings, childOpts) : logger),
    // Errors fastify raises before routing (a malformed URL, say) get Vault's error body too. The
    // body may not have been read, so the connection closes rather than parse it as a new request.
    frameworkErrors: (err, _req, reply) => {
      const r = reply as unknown as FastifyReply;
      if (r.raw.socket) answeredAndClosing.add(r.raw.socket);
      void sendErrors(r.header(NODE_HEADER, core.nodeId).header('Cache-Control', 'no-store').header('Connection', 'close'), 400, [`malformed request: ${err.message}`]);
    },
    // Bytes left on a connection we already answered and are closing are not a new request, and
    // nothing may be written while a reply is going out on the socket (a GET's unannounced body
    // arrives after its reply began): the same test Node's own clientError default makes.
    clientErrorHandler: (err, socket) => {
      // llhttp refuses LIST; the connection goes on reading through the LIST rewriter.
      if (continueWithListMethod(err, socket)) return;
      const replying = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
      if (replying || answeredAndClosing.has(socket) || !socket.writable || (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      // Node's header and request timeouts (http_read_header_timeout, http_read_timeout) end here too.
      const timedOut = (err as NodeJS.ErrnoException).code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const body = JSON.stringify({ errors: [timedOut ? 'request timed out: the headers or body took too long to arrive' : `malformed HTTP request: ${err.message}`] });
      socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
  };
  const app = (
    opts.https ? Fastify({ ...serverOptions, https: { ...opts.https, ...CLIENT_CERTIFICATES, ...timing } } as FastifyServerOptions) : Fastify({ ...serverOptions, http: timing })
  ) as FastifyInstance;
  app.server.maxConnections = limits.maxConnections;
  // Vault's clients list with the LIST method, which Node's parser does not know.
  acceptListMethod(app.server);

  // Vault clients send JSON with any content type (or none) and often an empty body.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // Vault treats PUT and POST alike (its CLI writes with PUT): a route declared for POST takes both.
  // An empty write means "no fields", as in Vault, so a body schema sees an empty object; routes
  // without one (the logical route among them) take an absent body as it is, and skip the hook.
  app.addHook('onRoute', (route) => {
    if (route.method === 'POST') route.method = ['PUT', 'POST'];
    if (route.schema?.body) route.preValidation = [emptyBodyAsObject, ...[route.preValidation ?? []].flat()];
  });

  // Properties every request gets, declared up front so requests keep one shape (V8 deoptimizes
  // code that sees objects grow properties one request at a time).
  app.decorateRequest('tokenEntry', undefined);
  app.decorateRequest('clientToken', undefined);
  app.decorateRequest('audited', false);
  app.decorateRequest('forwarded', false);
  app.decorateRequest('wrapTtl', 0);

  // One onRequest hook for what decides whether a request goes on: the standby's forwarding, the
  // key-share rate limit, then the seal and the token.
  const standby = new StandbyRouter(core, opts.standbyRequests ?? 'forward');
  const limiter = new ClientRateLimiter(opts.quorumRateLimit?.burst, opts.quorumRateLimit?.perSecond);
  const authorize = guard(core);
  app.addHook('onRequest', (req, reply, done) => {
    // Replies carry secrets, tokens and shares: no cache may keep them (Vault sends the same).
    reply.header(NODE_HEADER, core.nodeId).header('Cache-Control', 'no-store');
    // The wrap TTL is read first: a request that asks for wrapping goes to the active node.
    const unsupported = unsupportedHeaderError(req) ?? readWrapTtl(core, req);
    if (unsupported) return done(unsupported);
    // A request a standby forwarded is judged by its client's address and certificate, which the
    // standby vouches for. A sealed node serves only public routes, where neither matters.
    if (claimsForwardedClient(req) && !core.sealed) return void acceptForwardedClient(core, req).then(() => admit(req, reply, done), done);
    admit(req, reply, done);
  });
  const admit = (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    if (standby.takes(req)) return void standby.sendToActive(req, reply).catch(done);
    if (req.is404) return done();
    if (req.routeOptions.config.quorum) {
      const client = clientAddress(req);
      const wait = limiter.take(client);
      if (wait > 0) {
        reply.header('Retry-After', String(wait));
        return done(new HttpError(429, `too many requests from ${client} to key-share endpoints; retry in ${wait}s`));
      }
    }
    const pending = authorize(req);
    if (pending) pending.then(() => done(), done);
    else done();
  };

  // Wrapping comes first among the onSend hooks, so the audit records what is sent.
  registerResponseWrapping(app, core);
  registerAudit(app, core);
  registerPathHelp(app, core);

  app.setErrorHandler((err, req, reply) => {
    // A read this standby began but cannot finish (it needs a write, or a term not yet followed) goes to the active node.
    if ((err instanceof NotActiveError || err instanceof UnknownTermError) && standby.mayRetryOnActive(req)) {
      return standby.sendToActive(req, reply);
    }
    const out = toErrorReply(err, apiPath(req));
    if (out.serverFault) req.log.error({ err, reqId: req.id }, 'request failed');
    return sendErrors(reply, out.status, out.errors);
  });

  app.setNotFoundHandler((req, reply) => {
    return sendErrors(reply, 404, [`no handler for route "${req.url}". route entry not found.`]);
  });

  app.register(sealRoutes, { core });
  app.register(haRoutes, { core });
  app.register(hsmRoutes, { core });
  app.register(mountRoutes, { core });
  app.register(rekeyRoutes, { core });
  app.register(generateRootRoutes, { core });
  app.register(rotateRoutes, { core });
  app.register(policyRoutes, { core });
  app.register(auditRoutes, { core });
  app.register(tokenRoutes, { core });
  app.register(wrappingRoutes, { core });
  app.register(cubbyholeRoutes, { core });
  app.register(authMountRoutes, { core });
  app.register(authMethodRoutes, { core });
  app.register(logicalRoutes, { core });
  app.register(uiRoutes);
  app.register(notOfferedRoutes);
  return app;
}
