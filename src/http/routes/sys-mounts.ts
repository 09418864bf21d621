import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { PermissionDeniedError } from '../../core/errors.js';
import type { MountEntry } from '../../core/mounts.js';
import { mountPath, requestSpellings } from '../../core/names.js';
import type { Capability } from '../../core/policy.js';
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

/**
 * The stored mount path (`kv/`) a sys/mounts/<path> request names, once the token is allowed on
 * both spellings of it: "kv" and "kv/" name one mount, but an ACL rule names only one of them.
 */
async function requestedMount(core: Core, req: FastifyRequest<{ Params: { '*': string } }>, capability: Capability): Promise<string> {
  const path = mountPath(req.params['*']);
  const aclPaths = requestSpellings(path).map((spelling) => `sys/mounts/${spelling}`);
  await core.policies.requireOnEvery(req.tokenEntry!.policies, aclPaths, capability, false);
  return path;
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
      await core.mount(await requestedMount(core, req, 'update'), b.type, b.options?.version ?? '', b.description ?? '');
      return reply.code(204).send();
    },
  });

  app.delete<{ Params: { '*': string } }>('/v1/sys/mounts/*', async (req, reply) => {
    await core.unmount(await requestedMount(core, req, 'delete'));
    return reply.code(204).send();
  });

  app.get<{ Params: { '*': string } }>('/v1/sys/internal/ui/mounts/*', { config: { access: 'any-token' } }, async (req) => {
    const routed = core.router.route(req.params['*']);
    // Vault's answer to a token with nothing under the mount: the same 403 whether it exists or not.
    const acl = await core.policies.aclFor(req.tokenEntry!.policies);
    if (!routed || !acl.grantsBelow(routed.mount.path)) {
      if (!acl.root) throw new PermissionDeniedError(`the token's policies grant nothing under "${req.params['*']}"`);
      throw new HttpError(404, `no secrets engine is mounted at "${req.params['*']}"`);
    }
    return envelope(req.id, { path: routed.mount.path, ...describe(routed.mount) });
  });
}
