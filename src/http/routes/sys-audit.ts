import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError } from '../../core/errors.js';
import { sysReply } from '../envelope.js';

type Path = FastifyRequest<{ Params: { '*': string }; Body: Record<string, unknown> | undefined }>;

/** sys/audit (list, enable, disable; sudo) and sys/audit-hash (what an audit line carries for a value). */
export async function auditRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { audit } = opts.core;

  app.get('/v1/sys/audit', async (req) => {
    const table = Object.fromEntries(audit.list().map((d) => [d.path, { type: d.type, description: d.description, options: d.options, local: false }]));
    return sysReply(req.id, table);
  });

  app.route({
    method: ['PUT', 'POST'],
    url: '/v1/sys/audit/*',
    handler: async (req: Path, reply) => {
      const b = req.body ?? {};
      const options = (b.options ?? {}) as Record<string, unknown>;
      if (typeof options !== 'object' || Array.isArray(options)) throw new InvalidRequestError('options must be an object');
      await opts.core.locked(() => audit.enable(req.params['*'], String(b.type ?? ''), options, typeof b.description === 'string' ? b.description : ''));
      return reply.code(204).send();
    },
  });

  app.delete('/v1/sys/audit/*', async (req: Path, reply) => {
    await opts.core.locked(() => audit.disable(req.params['*']));
    return reply.code(204).send();
  });

  app.post('/v1/sys/audit-hash/*', async (req: Path) => {
    const input = req.body?.input;
    if (typeof input !== 'string') throw new InvalidRequestError("missing 'input'");
    return sysReply(req.id, { hash: await audit.hash(input) });
  });
}
