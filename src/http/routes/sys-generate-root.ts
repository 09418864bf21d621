import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { shareBody } from '../schemas.js';

const attemptBody = {
  type: 'object',
  properties: { pgp_key: { type: 'string' }, otp: { type: 'string' } },
} as const;

/** sys/generate-root/{attempt,update}: unauthenticated, as in Vault; the shares are the authorization. */
export async function generateRootRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const gen = core.generateRoot;
  const publicRoute = { access: 'public' as const };
  const write = ['PUT', 'POST'] as ['PUT', 'POST'];

  app.get('/v1/sys/generate-root/attempt', { config: publicRoute }, () => core.locked(() => gen.status()));
  app.route<{ Body: { pgp_key?: string; otp?: string } | undefined }>({
    method: write,
    url: '/v1/sys/generate-root/attempt',
    config: publicRoute,
    schema: { body: attemptBody },
    handler: (req) => core.locked(() => gen.start(req.body?.pgp_key || undefined, req.body?.otp || undefined)),
  });
  app.delete('/v1/sys/generate-root/attempt', { config: publicRoute }, async (_req, reply) => {
    await core.locked(async () => gen.cancel());
    return reply.code(204).send();
  });
  app.route<{ Body: { key: string; nonce: string } }>({
    method: write,
    url: '/v1/sys/generate-root/update',
    config: { ...publicRoute, quorum: true },
    schema: { body: shareBody },
    handler: (req) => core.locked(() => gen.update(req.body.key, req.body.nonce)),
  });
}
