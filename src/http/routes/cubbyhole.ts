import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { NotFoundError } from '../../core/errors.js';
import { listRequested } from '../auth.js';
import { envelope } from '../envelope.js';
import { requestFields } from '../json-body.js';
import { HttpError } from '../errors.js';

type CubbyholeRequest = FastifyRequest<{ Params: { '*'?: string } }>;

/**
 * cubbyhole/*: the calling token's private store, with Vault's KV-version-1-like API (read, write,
 * list, delete). The guard has checked the policy on the path; the store is the token's own.
 */
export async function cubbyholeRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;

  const handler = async (req: CubbyholeRequest, reply: FastifyReply) => {
    const owner = req.tokenEntry!;
    const path = req.params['*'] ?? '';
    switch (req.method) {
      case 'GET':
      case 'HEAD': {
        if (listRequested(req)) return envelopeOf(req, { keys: await core.cubbyholes.list(owner, path) });
        const data = await core.cubbyholes.read(owner, path);
        if (!data) throw new NotFoundError('');
        return envelopeOf(req, data);
      }
      case 'PUT':
      case 'POST': {
        await core.cubbyholes.write(owner, path, requestFields(req.body));
        return reply.code(204).send();
      }
      case 'DELETE':
        await core.cubbyholes.delete(owner, path);
        return reply.code(204).send();
      default:
        throw new HttpError(405, `the cubbyhole does not support ${req.method}; write the whole entry with PUT or POST`);
    }
  };

  const route = { method: ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'], config: { lists: true }, handler };
  app.route({ ...route, url: '/v1/cubbyhole' });
  app.route({ ...route, url: '/v1/cubbyhole/*' });
}

function envelopeOf(req: FastifyRequest, data: Record<string, unknown>): Record<string, unknown> {
  return { ...envelope(req.id, data), mount_type: 'cubbyhole' };
}
