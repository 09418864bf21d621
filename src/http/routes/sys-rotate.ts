import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { formatDuration } from '../../core/rotation.js';
import { sysReply } from '../envelope.js';


/** sys/rotate, sys/key-status, sys/rotate/config, and keyward's term retirement: rewrap, terms, prune. */
export async function rotateRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const write = ['PUT', 'POST'] as ['PUT', 'POST'];

  app.route({
    method: write,
    url: '/v1/sys/rotate',
    handler: async (_req, reply) => {
      await core.rotate();
      return reply.code(204).send();
    },
  });

  app.get('/v1/sys/key-status', async (req) => {
    const k = core.barrier.activeKey();
    return sysReply(req.id, { term: k.term, install_time: k.installTime, encryptions: k.encryptions });
  });

  app.get('/v1/sys/rotate/config', async (req) => {
    const c = core.barrier.rotationConfig();
    return sysReply(req.id, { max_operations: c.maxOperations, interval: formatDuration(c.interval), enabled: c.enabled });
  });

  app.route<{ Body: Record<string, unknown> | undefined }>({
    method: write,
    url: '/v1/sys/rotate/config',
    schema: { body: { type: 'object' } },
    handler: async (req, reply) => {
      await core.setRotationConfig(req.body ?? {});
      return reply.code(204).send();
    },
  });

  app.get('/v1/sys/rotate/terms', async (req) => sysReply(req.id, { terms: await core.terms() }));

  app.post('/v1/sys/rotate/rewrap', async (req) => sysReply(req.id, { ...(await core.rewrap.start()) }));
  app.get('/v1/sys/rotate/rewrap', async (req) => sysReply(req.id, { ...core.rewrap.status() }));
  app.delete('/v1/sys/rotate/rewrap', async (req) => sysReply(req.id, { ...(await core.rewrap.cancel()) }));

  app.route({
    method: write,
    url: '/v1/sys/rotate/prune',
    handler: async (req) => sysReply(req.id, { pruned: await core.prune() }),
  });

  app.get('/v1/sys/metrics', async (_req, reply) => {
    const text = await core.metrics.registry.metrics();
    return reply.type(core.metrics.registry.contentType).send(text);
  });
}
