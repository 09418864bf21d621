import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError } from '../../core/errors.js';
import { envelope, sysReply } from '../envelope.js';

type Body = Record<string, unknown>;
type Named = FastifyRequest<{ Params: { name: string } }>;


/** The document from a policy write: Vault accepts it as `policy` or (older API) `rules`. */
function documentOf(req: FastifyRequest): string {
  const b = (req.body as Body | undefined) ?? {};
  const doc = b.policy ?? b.rules;
  if (typeof doc !== 'string' || doc.trim() === '') throw new InvalidRequestError("missing policy document: send it as 'policy' (or 'rules')");
  return doc;
}

/** sys/policy, sys/policies/acl and sys/capabilities(-self, -accessor). */
export async function policyRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { policies } = opts.core;
  const write = ['PUT', 'POST'] as ['PUT', 'POST'];

  const put = async (req: Named, reply: FastifyReply) => {
    await policies.put(req.params.name, documentOf(req));
    return reply.code(204).send();
  };
  const remove = async (req: Named, reply: FastifyReply) => {
    await policies.delete(req.params.name);
    return reply.code(204).send();
  };

  app.get('/v1/sys/policy', async (req) => {
    const names = await policies.list();
    return sysReply(req.id, { policies: names, keys: names });
  });
  app.get('/v1/sys/policy/:name', async (req: Named) => {
    const p = await policies.get(req.params.name);
    return sysReply(req.id, { name: p.name, rules: p.raw });
  });
  app.route({ method: write, url: '/v1/sys/policy/:name', handler: put });
  app.delete('/v1/sys/policy/:name', remove);

  app.get('/v1/sys/policies/acl', { config: { lists: true } }, async (req) => envelope(req.id, { keys: await policies.list() }));
  app.get('/v1/sys/policies/acl/:name', async (req: Named) => {
    const p = await policies.get(req.params.name);
    return envelope(req.id, { name: p.name, policy: p.raw });
  });
  app.route({ method: write, url: '/v1/sys/policies/acl/:name', handler: put });
  app.delete('/v1/sys/policies/acl/:name', remove);

  const capabilities = async (req: FastifyRequest, names: string[]) => {
    const b = (req.body as Body | undefined) ?? {};
    const paths = Array.isArray(b.paths) ? (b.paths as unknown[]) : b.path !== undefined ? [b.path] : [];
    if (paths.length === 0 || paths.some((p) => typeof p !== 'string')) throw new InvalidRequestError("give 'path' (or 'paths') as strings");
    const acl = await policies.aclFor(names);
    const out: Record<string, unknown> = {};
    for (const p of paths as string[]) out[p] = acl.capabilities(p.replace(/^\/+/, ''));
    if (paths.length === 1) out.capabilities = out[paths[0] as string];
    return sysReply(req.id, out);
  };
  app.post('/v1/sys/capabilities-self', (req) => capabilities(req, req.tokenEntry!.policies));
  app.post('/v1/sys/capabilities', async (req) => {
    const b = (req.body as Body | undefined) ?? {};
    if (typeof b.token !== 'string') throw new InvalidRequestError("missing 'token'");
    const entry = await opts.core.tokens.lookup(b.token).catch(() => {
      throw new InvalidRequestError('bad token');
    });
    return capabilities(req, entry.policies);
  });
  app.post('/v1/sys/capabilities-accessor', async (req) => {
    const b = (req.body as Body | undefined) ?? {};
    if (typeof b.accessor !== 'string') throw new InvalidRequestError("missing 'accessor'");
    const entry = await opts.core.tokens.lookupAccessor(b.accessor);
    return capabilities(req, entry.policies);
  });
}
