import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError } from '../../core/errors.js';
import { auditPath, requestSpellings } from '../../core/names.js';
import type { Capability } from '../../core/policy.js';
import { sysReply } from '../envelope.js';

type Path = FastifyRequest<{ Params: { '*': string }; Body: Record<string, unknown> | undefined }>;

/**
 * The stored device path (`file/`) a sys/audit/<path> request names, once the token is allowed
 * (with sudo, as sys/audit needs) on both spellings of it: "file" and "file/" name one device,
 * but an ACL rule names only one of them.
 */
async function requestedDevice(core: Core, req: Path, capability: Capability): Promise<string> {
  const path = auditPath(req.params['*']);
  const aclPaths = requestSpellings(path).map((spelling) => `sys/audit/${spelling}`);
  await core.policies.requireOnEvery(req.tokenEntry!.policies, aclPaths, capability, true);
  return path;
}

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
      const path = await requestedDevice(opts.core, req, 'update');
      await opts.core.locked(() => audit.enable(path, String(b.type ?? ''), options, typeof b.description === 'string' ? b.description : ''));
      return reply.code(204).send();
    },
  });

  app.delete('/v1/sys/audit/*', async (req: Path, reply) => {
    const path = await requestedDevice(opts.core, req, 'delete');
    await opts.core.locked(() => audit.disable(path));
    return reply.code(204).send();
  });

  app.post('/v1/sys/audit-hash/*', async (req: Path) => {
    const input = req.body?.input;
    if (typeof input !== 'string') throw new InvalidRequestError("missing 'input'");
    return sysReply(req.id, { hash: await audit.hash(input) });
  });
}
