import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import type { MountEntry } from '../../core/mounts.js';
import { envelope, sysReply } from '../envelope.js';
import { HttpError } from '../errors.js';

const mountBody = {
  type: 'object',
  properties: {
    type: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    options: { type: 'object', properties: { version: { type: 'string' } } },
    config: { type: 'object' },
  },
  required: ['type'],
} as const;

interface MountBody {
  type: string;
  description?: string;
  options?: { version?: string };
}

function describe(m: MountEntry): Record<string, unknown> {
  return {
    type: m.type,
    description: m.description,
    accessor: m.accessor,
    uuid: m.uuid,
    options: m.options,
    config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false },
    local: false,
    seal_wrap: false,
    external_entropy_access: false,
    plugin_version: '',
  };
}

/** sys/mounts (list, enable, disable) and sys/internal/ui/mounts (which engine serves a path, as Vault's CLI asks). */
export async function mountRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  app.get('/v1/sys/mounts', async (req) => {
    const table = Object.fromEntries(core.mounts.list().map((m) => [m.path, describe(m)]));
    return sysReply(req.id, table);
  });

  app.route<{ Params: { '*': string }; Body: MountBody }>({
    method: ['PUT', 'POST'],
    url: '/v1/sys/mounts/*',
    schema: { body: mountBody },
    handler: async (req, reply) => {
      const b = req.body;
      await core.mount(req.params['*'], b.type, b.options?.version ?? '', b.description ?? '');
      return reply.code(204).send();
    },
  });

  app.delete<{ Params: { '*': string } }>('/v1/sys/mounts/*', async (req, reply) => {
    await core.unmount(req.params['*']);
    return reply.code(204).send();
  });

  app.get<{ Params: { '*': string } }>('/v1/sys/internal/ui/mounts/*', { config: { access: 'any-token' } }, async (req) => {
    const routed = core.router.route(req.params['*']);
    if (!routed) throw new HttpError(404, `no secrets engine is mounted at "${req.params['*']}"`);
    return envelope(req.id, { path: routed.mount.path, ...describe(routed.mount) });
  });
}
