import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { HttpError } from '../errors.js';

const leaderSchema = {
  type: 'object',
  properties: {
    ha_enabled: { type: 'boolean' },
    is_self: { type: 'boolean' },
    active_time: { type: 'string' },
    leader_address: { type: 'string' },
    leader_cluster_address: { type: 'string' },
    performance_standby: { type: 'boolean' },
    performance_standby_last_remote_wal: { type: 'integer' },
  },
} as const;

/** sys/leader (any node answers from the lease) and sys/step-down (the active node gives the lease up). */
export async function haRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  app.get('/v1/sys/leader', { config: { access: 'public', standby: 'serve' }, schema: { response: { 200: leaderSchema } } }, () => core.leaderStatus());

  app.route({
    method: ['PUT', 'POST'],
    url: '/v1/sys/step-down',
    handler: async (_req, reply) => {
      if (!core.ha) throw new HttpError(400, 'this node is not part of an HA cluster (storage ha_enabled is off): there is no leadership to give up');
      await core.ha.stepDown();
      return reply.code(204).send();
    },
  });
}
