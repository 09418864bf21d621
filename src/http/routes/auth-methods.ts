import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AuthRequest } from '../../auth/method.js';
import type { Core } from '../../core/core.js';
import { PermissionDeniedError } from '../../core/errors.js';
import { envelope } from '../envelope.js';
import { requestFields } from '../json-body.js';
import { clientAddress, clientCertificate } from '../forwarded-client.js';
import { HttpError } from '../errors.js';
import { authBlock } from './auth-token.js';
import { type LogicalRequest, operationOf } from './logical.js';

/** Who sent a request: its address (for CIDR bounds) and the TLS client certificate it presented, if any. */
function connectionOf(req: LogicalRequest): AuthRequest['connection'] {
  return { remoteAddress: clientAddress(req), peerCertificate: clientCertificate(req) };
}

/**
 * auth/<path>/...: the auth method mounted there (longest prefix) answers; the token store keeps
 * its own routes under auth/token/. A login path needs no token (see the guard's `auth-method`
 * access); a handler that answers with `auth` gets a token issued, in Vault's login reply.
 */
export async function authMethodRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  const handler = async (req: LogicalRequest, reply: FastifyReply) => {
    const path = req.params['*'];
    const routed = core.authMethods.route(path);
    if (!routed) throw new HttpError(404, `no handler for route "auth/${path}". route entry not found.`);
    const result = await routed.method.handle({
      operation: operationOf(req),
      path: routed.path,
      data: requestFields(req.body),
      query: req.query,
      connection: connectionOf(req),
    });
    if (!result) return reply.code(204).send();
    const warnings = result.warnings ?? null;
    if (!result.auth) {
      return reply.code(result.status ?? 200).send({ ...envelope(req.id, result.data ?? null, result.leaseDuration ?? 0), warnings, mount_type: routed.mount.type });
    }
    const { mount } = routed;
    const { token, entry } = await core.tokens.createForLogin(result.auth, `auth/${mount.path}${routed.path}`, mount.config);
    // A disable that began meanwhile may have swept the method's tokens before this one was
    // written: checked after the write, so one of the two always revokes it.
    if (core.auth.enabledAt(mount.path)?.uuid !== mount.uuid) {
      await core.tokens.revoke(entry, false);
      throw new PermissionDeniedError(`the auth method at "auth/${mount.path}" was disabled during this login`);
    }
    const auth = { ...authBlock(core.tokens, token, entry), identity_policies: null };
    return reply.code(200).send({ ...envelope(req.id, result.data ?? null), warnings, auth, mount_type: mount.type });
  };

  app.route({ method: ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'], url: '/v1/auth/*', config: { lists: true, access: 'auth-method' }, handler });
}
