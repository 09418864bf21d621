import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { InvalidRequestError, NotFoundError, PermissionDeniedError } from '../../core/errors.js';
import { isUnset } from '../../core/fields.js';
import type { MountChanges, MountEntry, MountTtls } from '../../core/mounts.js';
import { mountPath, requestSpellings } from '../../core/names.js';
import type { Capability } from '../../core/policy.js';
import { parseDuration } from '../../core/rotation.js';
import { envelope, sysReply } from '../envelope.js';
import { HttpError } from '../errors.js';

type Body = Record<string, unknown>;
type MountRequest = FastifyRequest<{ Params: { '*': string }; Body: Body }>;

/** Any JSON object: the fields are checked below, each with a message that names it. */
const objectBody = { type: 'object' } as const;

/** `sys/mounts/<path>/tune`: the mount path it names (a trailing "/" before "/tune" is refused, so the ACL sees one spelling). */
const TUNE = /^(.+)\/tune$/;

/**
 * Fields of Vault's mount config that keyward does not implement: accepted only unset (null,
 * empty or false, as Vault's clients send them by default), refused otherwise rather than ignored.
 */
export const UNSUPPORTED_CONFIG = [
  'audit_non_hmac_request_keys',
  'audit_non_hmac_response_keys',
  'listing_visibility',
  'passthrough_request_headers',
  'allowed_response_headers',
  'allowed_managed_keys',
  'token_type',
  'plugin_version',
  'plugin_name',
  'user_lockout_config',
  'delegated_auth_accessors',
  'identity_token_key',
  'force_no_cache',
];
/** Mount-level fields of Vault's enable request that keyward does not implement, accepted only unset. */
export const UNSUPPORTED_MOUNT = ['local', 'seal_wrap', 'external_entropy_access', 'plugin_version', 'plugin_name'];

function describe(m: MountEntry): Record<string, unknown> {
  return {
    type: m.type,
    description: m.description,
    accessor: m.accessor,
    uuid: m.uuid,
    options: m.options,
    config: { default_lease_ttl: m.config?.default_lease_ttl ?? 0, max_lease_ttl: m.config?.max_lease_ttl ?? 0, force_no_cache: false },
    local: false,
    seal_wrap: false,
    external_entropy_access: false,
    plugin_version: '',
  };
}

/**
 * Refuses a field of Vault's that keyward does not implement, when it is set. Other unknown fields
 * are ignored, as Vault ignores them (node-vault sends its `mount_point` argument in the body).
 */
export function refuseUnsupported(body: Body, where: string, unsupported: readonly string[]): void {
  for (const field of unsupported) {
    if (!isUnset(body[field])) throw new InvalidRequestError(`"${where}${field}" is not supported by keyward; leave it out`);
  }
}

export function objectField(v: unknown, field: string): Body {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidRequestError(`"${field}" must be an object`);
  return v as Body;
}

export function stringField(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new InvalidRequestError(`"${field}" must be a string`);
  return v;
}

/** A TTL as Vault takes it: seconds or a duration ("1h30m"), "system" for the server's (0); unset keeps `current`. */
function ttlField(v: unknown, field: string, current: number): number {
  if (v === undefined || v === null || v === '') return current;
  if (v === 'system') return 0;
  return parseDuration(v, field);
}

/** The TTLs a request's fields ask for, on top of `current`. */
export function ttlsFrom(fields: Body, current: MountTtls | undefined): MountTtls {
  return {
    default_lease_ttl: ttlField(fields.default_lease_ttl, 'default_lease_ttl', current?.default_lease_ttl ?? 0),
    max_lease_ttl: ttlField(fields.max_lease_ttl, 'max_lease_ttl', current?.max_lease_ttl ?? 0),
  };
}

/** `options.version` of a request, checked as Vault does; undefined when not given. */
function versionOption(options: Body): '1' | '2' | undefined {
  // Options are engine settings: one keyward does not know would be silently without effect.
  const unknown = Object.keys(options).find((k) => k !== 'version');
  if (unknown !== undefined) throw new InvalidRequestError(`option "${unknown}" is not supported (the only option is "version", for kv mounts)`);
  const v = options.version;
  if (v === undefined || v === null || v === '') return undefined;
  const text = typeof v === 'number' ? String(v) : v;
  if (text !== '1' && text !== '2') throw new InvalidRequestError(`invalid version provided: ${typeof text === 'string' ? text : JSON.stringify(v)}`);
  return text;
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

/**
 * The mount path a sys/mounts/<path>/tune request names. The ACL checked the request path as
 * sent, `sys/mounts/kv/tune`; "kv//tune" would be another spelling of it, so it is refused.
 */
function tunedMount(given: string): string {
  if (given.endsWith('/')) throw new InvalidRequestError(`tune the mount as "sys/mounts/${given.replace(/\/+$/, '')}/tune", without a "/" before "/tune"`);
  return mountPath(given);
}

/** Vault's answer to sys/mounts/<path>/tune: the TTLs in force (the server's where the mount has none of its own). */
function tuneInfo(core: Core, m: MountEntry): Record<string, unknown> {
  const info: Record<string, unknown> = {
    description: m.description,
    default_lease_ttl: m.config?.default_lease_ttl || core.systemTtls.defaultTtl,
    max_lease_ttl: m.config?.max_lease_ttl || core.systemTtls.maxTtl,
    force_no_cache: false,
  };
  if (Object.keys(m.options).length > 0) info.options = m.options;
  return info;
}

function tuneChanges(m: MountEntry, body: Body): MountChanges {
  refuseUnsupported(body, '', UNSUPPORTED_CONFIG);
  const version = versionOption(objectField(body.options, 'options'));
  if (version && m.type !== 'kv') throw new InvalidRequestError(`options.version applies to kv mounts only; "${m.path}" is a ${m.type} mount`);
  if (version === '1' && m.options.version === '2') throw new InvalidRequestError('cannot downgrade mount from version 2');
  return {
    description: stringField(body.description, 'description'),
    ttls: ttlsFrom(body, m.config),
    kvVersion: version === '2' ? '2' : undefined,
  };
}

/** Moves done by this node, for sys/remount/status (a move here completes before its reply). */
const MIGRATIONS_KEPT = 100;

/**
 * sys/mounts (list, enable, read, tune, disable), sys/remount (and its status) and
 * sys/internal/ui/mounts (which engine serves a path, as Vault's CLI asks).
 */
export async function mountRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const migrations = new Map<string, { source_mount: string; target_mount: string; status: 'success' }>();

  app.get('/v1/sys/mounts', async (req) => {
    const table = Object.fromEntries(core.mounts.list().map((m) => [m.path, describe(m)]));
    return sysReply(req.id, table);
  });

  app.get<{ Params: { '*': string } }>('/v1/sys/mounts/*', async (req) => {
    const tune = TUNE.exec(req.params['*']);
    if (tune) {
      const path = tunedMount(tune[1]!);
      const m = core.mounts.get(path);
      if (!m) throw new InvalidRequestError(`cannot fetch sysview for path "${path}"`);
      return sysReply(req.id, tuneInfo(core, m));
    }
    const path = await requestedMount(core, req, 'read');
    const m = core.mounts.get(path);
    if (!m) throw new InvalidRequestError(`No secret engine mount at ${path}`);
    return sysReply(req.id, describe(m));
  });

  app.route<{ Params: { '*': string }; Body: Body }>({
    method: ['PUT', 'POST'],
    url: '/v1/sys/mounts/*',
    schema: { body: objectBody },
    handler: async (req: MountRequest, reply) => {
      const b = req.body;
      const tune = TUNE.exec(req.params['*']);
      if (tune) {
        const path = tunedMount(tune[1]!);
        await core.locked(async () => {
          const m = core.mounts.get(path);
          if (!m) throw new InvalidRequestError(`tune of path "${path}" failed: no mount entry found`);
          await core.mounts.tune(path, tuneChanges(m, b));
        });
        return reply.code(204).send();
      }
      refuseUnsupported(b, '', UNSUPPORTED_MOUNT);
      const type = stringField(b.type, 'type');
      if (!type) throw new InvalidRequestError('missing required field "type"');
      const config = objectField(b.config, 'config');
      refuseUnsupported(config, 'config.', UNSUPPORTED_CONFIG);
      if (!isUnset(config.options)) throw new InvalidRequestError('give the mount\'s options at the top level ("options"), not under "config"');
      const version = versionOption(objectField(b.options, 'options'));
      if (version && type !== 'kv' && type !== 'kv-v2') throw new InvalidRequestError(`options.version applies to kv mounts only, not to ${type}`);
      const path = await requestedMount(core, req, 'update');
      await core.mount(path, type, version ?? '', stringField(b.description, 'description') ?? '', ttlsFrom(config, undefined));
      return reply.code(204).send();
    },
  });

  app.delete<{ Params: { '*': string } }>('/v1/sys/mounts/*', async (req, reply) => {
    await core.unmount(await requestedMount(core, req, 'delete'));
    return reply.code(204).send();
  });

  // Vault requires update with sudo on sys/remount (see SUDO_PATHS); the move keeps the mount's data.
  app.post<{ Body: Body }>('/v1/sys/remount', { schema: { body: objectBody } }, async (req) => {
    const { from, to } = req.body;
    if (typeof from !== 'string' || typeof to !== 'string' || !from || !to) {
      throw new InvalidRequestError("both 'from' and 'to' path must be specified as a string");
    }
    const moved = await core.locked(() => core.mounts.remount(from, to));
    const id = randomUUID();
    migrations.set(id, { source_mount: mountPath(from), target_mount: moved.path, status: 'success' });
    if (migrations.size > MIGRATIONS_KEPT) migrations.delete(migrations.keys().next().value!);
    return sysReply(req.id, { migration_id: id });
  });

  app.get<{ Params: { id: string } }>('/v1/sys/remount/status/:id', async (req) => {
    const info = migrations.get(req.params.id);
    if (!info) throw new NotFoundError(`no move with migration ID "${req.params.id}" was made by this node`);
    return sysReply(req.id, { migration_id: req.params.id, migration_info: info });
  });

  app.get<{ Params: { '*': string } }>('/v1/sys/internal/ui/mounts/*', { config: { access: 'any-token' } }, async (req) => {
    const asked = req.params['*'];
    // Every token has its own cubbyhole, which no engine serves but Vault's CLI looks up like any mount.
    const cubbyhole = (asked + '/').startsWith('cubbyhole/') ? core.mounts.get('cubbyhole/') : undefined;
    if (cubbyhole) return envelope(req.id, { path: cubbyhole.path, ...describe(cubbyhole) });
    const routed = core.router.route(asked);
    // Vault's answer to a token with nothing under the mount: the same 403 whether it exists or not.
    const acl = await core.policies.aclFor(req.tokenEntry!.policies);
    if (!routed || !acl.grantsBelow(routed.mount.path)) {
      if (!acl.root) throw new PermissionDeniedError(`the token's policies grant nothing under "${req.params['*']}"`);
      throw new HttpError(404, `no secrets engine is mounted at "${req.params['*']}"`);
    }
    return envelope(req.id, { path: routed.mount.path, ...describe(routed.mount) });
  });
}
