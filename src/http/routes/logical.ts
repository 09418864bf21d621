import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import type { Operation } from '../../engines/engine.js';
import { listRequested } from '../auth.js';
import { envelope } from '../envelope.js';
import { requestFields } from '../json-body.js';
import { HttpError } from '../errors.js';

export type LogicalRequest = FastifyRequest<{ Params: { '*': string }; Querystring: Record<string, string | undefined> }>;

/** The logical operation an HTTP request asks for, as Vault maps methods (GET with ?list=true lists). */
export function operationOf(req: LogicalRequest): Operation {
  switch (req.method) {
    case 'GET':
      return listRequested(req) ? 'list' : 'read';
    case 'PUT':
    case 'POST':
      return 'update';
    case 'DELETE':
      return 'delete';
    case 'PATCH':
      return 'patch';
    default:
      throw new HttpError(405, `method ${req.method} is not supported`);
  }
}

/** Everything under /v1 that is not a sys route: found in the mount table and handed to its engine. */
export async function logicalRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  const handler = async (req: LogicalRequest, reply: FastifyReply) => {
    const path = req.params['*'];
    const routed = path.startsWith('sys/') ? undefined : core.router.route(path);
    if (!routed) throw new HttpError(404, `no handler for route "${path}". route entry not found.`);
    const result = await routed.engine.handle({
      operation: operationOf(req),
      path: routed.path,
      data: requestFields(req.body),
      query: req.query,
    });
    if (!result) return reply.code(204).send();
    const payload = { ...envelope(req.id, result.data ?? null, result.leaseDuration ?? 0), mount_type: routed.mount.type };
    return reply.code(result.status ?? 200).send(payload);
  };

  app.route({ method: ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'], url: '/v1/*', config: { lists: true }, handler });
}
