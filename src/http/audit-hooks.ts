import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuditFailedError } from '../core/audit.js';
import type { Core } from '../core/core.js';
import { apiPath, clientToken, listRequested } from './auth.js';
import { clientAddress } from './forwarded-client.js';

declare module 'fastify' {
  interface FastifyRequest {
    audited?: boolean;
  }
  interface FastifyContextConfig {
    /** false: not an API request (the console's static files), so not audited, as Vault does not audit its UI's. */
    audit?: false;
  }
}

function operation(req: FastifyRequest): string {
  if (req.method === 'GET') return listRequested(req) ? 'list' : 'read';
  return { DELETE: 'delete', PATCH: 'patch', HEAD: 'read' }[req.method] ?? 'update';
}

function requestLine(core: Core, req: FastifyRequest): Record<string, unknown> {
  const token = clientToken(req);
  return {
    request_id: req.id,
    path: apiPath(req),
    operation: operation(req),
    remote_address: clientAddress(req),
    client_token: token ? core.audit.hashed(token) : '',
    data: req.body === undefined ? null : core.audit.hashed(req.body),
  };
}

function authLine(req: FastifyRequest): Record<string, unknown> | null {
  const e = req.tokenEntry;
  return e ? { accessor: e.accessor, policies: e.policies, display_name: e.display_name } : null;
}

/**
 * Audit: a line before the handler runs (after authorization) and a line with the response.
 * If every device fails, the request is refused before it does anything, or its reply is
 * replaced by the error (the work is done, but the caller learns it was not audited).
 */
export function registerAudit(app: FastifyInstance, core: Core): void {
  const writeRequest = (req: FastifyRequest) => {
    core.audit.record({ type: 'request', time: new Date().toISOString(), auth: authLine(req), request: requestLine(core, req) });
    req.audited = true;
  };

  // Callback hooks: with no audit device, as usual, they cost a request no promise.
  app.addHook('preHandler', (req, _reply, done) => {
    if (!core.audit.enabled || req.routeOptions.config.audit === false) return done();
    try {
      writeRequest(req);
    } catch (err) {
      return done(err as Error);
    }
    done();
  });

  app.addHook('onSend', (req, reply, payload, done) => {
    if (!core.audit.enabled || req.forwarded || req.routeOptions.config.audit === false) return done(null, payload);
    let data: unknown = null;
    // Error bodies are sent as bytes (see sendErrors in server.ts).
    const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '';
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    try {
      if (!req.audited) writeRequest(req);
      core.audit.record({
        type: 'response',
        time: new Date().toISOString(),
        auth: authLine(req),
        request: { request_id: req.id, path: apiPath(req), operation: operation(req), remote_address: clientAddress(req) },
        response: { status: reply.statusCode, data: core.audit.hashed(data) },
      });
    } catch (err) {
      if (!(err instanceof AuditFailedError)) return done(err as Error);
      req.log.error({ err: err.message, reqId: req.id }, 'audit failure');
      reply.code(500).type('application/json');
      return done(null, JSON.stringify({ errors: [err.message] }));
    }
    done(null, payload);
  });
}
