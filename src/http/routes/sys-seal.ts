import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../core/core.js';
import { HttpError } from '../errors.js';

const sealStatusSchema = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    initialized: { type: 'boolean' },
    sealed: { type: 'boolean' },
    t: { type: 'integer' },
    n: { type: 'integer' },
    progress: { type: 'integer' },
    nonce: { type: 'string' },
    version: { type: 'string' },
    migration: { type: 'boolean' },
    recovery_seal: { type: 'boolean' },
    storage_type: { type: 'string' },
    cluster_name: { type: 'string' },
    cluster_id: { type: 'string' },
    init_pending: { type: 'boolean' },
    rekey_pending: { type: 'object', properties: { nonce: { type: 'string' }, t: { type: 'integer' }, n: { type: 'integer' } } },
  },
} as const;

const initBody = {
  type: 'object',
  properties: {
    secret_shares: { type: 'integer' },
    secret_threshold: { type: 'integer' },
    pgp_keys: { type: 'array', items: { type: 'string' } },
    root_token_pgp_key: { type: 'string' },
    stored_shares: { type: 'integer' },
    recovery_shares: { type: 'integer' },
    recovery_threshold: { type: 'integer' },
  },
  required: ['secret_shares', 'secret_threshold'],
} as const;

const unsealBody = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    reset: { type: 'boolean' },
    migrate: { type: 'boolean' },
  },
} as const;

const healthQuery = {
  type: 'object',
  properties: {
    standbyok: { type: 'boolean' },
    perfstandbyok: { type: 'boolean' },
    activecode: { type: 'integer', minimum: 100, maximum: 599 },
    standbycode: { type: 'integer', minimum: 100, maximum: 599 },
    sealedcode: { type: 'integer', minimum: 100, maximum: 599 },
    uninitcode: { type: 'integer', minimum: 100, maximum: 599 },
  },
} as const;

interface InitBody {
  secret_shares: number;
  secret_threshold: number;
  pgp_keys?: string[];
  root_token_pgp_key?: string;
  stored_shares?: number;
}

interface HealthQuery {
  standbyok?: boolean;
  perfstandbyok?: boolean;
  activecode?: number;
  standbycode?: number;
  sealedcode?: number;
  uninitcode?: number;
}

/** sys/init, sys/seal-status, sys/unseal, sys/seal, sys/health: Vault's shapes and status codes. */
export async function sealRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const write = ['PUT', 'POST'] as const;

  app.get('/v1/sys/init', { config: { access: 'public', standby: 'serve' } }, async () => ({ initialized: await core.initialized() }));

  app.route<{ Body: InitBody }>({
    method: [...write],
    url: '/v1/sys/init',
    config: { access: 'public', standby: 'serve' },
    schema: {
      body: initBody,
      response: {
        200: {
          type: 'object',
          properties: {
            keys: { type: 'array', items: { type: 'string' } },
            keys_base64: { type: 'array', items: { type: 'string' } },
            root_token: { type: 'string' },
          },
        },
      },
    },
    handler: async (req, res) => {
      const body = req.body;
      if (body.root_token_pgp_key) throw new HttpError(400, 'root_token_pgp_key is not supported yet; initialize without it');
      if (body.stored_shares) throw new HttpError(400, 'stored shares are only for auto-unseal seals; this server uses Shamir shares');
      const result = await core.init(body.secret_shares, body.secret_threshold, body.pgp_keys ?? []);
      const reply = {
        keys: result.keys.map((k) => k.toString('hex')),
        keys_base64: result.keys.map((k) => k.toString('base64')),
        root_token: result.rootToken,
      };
      for (const k of result.keys) k.fill(0);
      // Confirmed once the reply with the shares has been handed to the socket; a reply that never
      // leaves leaves the service uninitialized, to be initialized again.
      res.raw.once('finish', () => core.confirmInitAfterReply());
      return reply;
    },
  });

  app.get('/v1/sys/seal-status', { config: { access: 'public', standby: 'serve' }, schema: { response: { 200: sealStatusSchema } } }, () => core.sealStatus());

  app.route<{ Body: { key?: string; reset?: boolean } | undefined }>({
    method: [...write],
    url: '/v1/sys/unseal',
    config: { access: 'public', quorum: true, standby: 'serve' },
    schema: { body: unsealBody, response: { 200: sealStatusSchema } },
    handler: (req) => core.unseal(req.body?.key, req.body?.reset === true),
  });

  app.route({
    method: [...write],
    url: '/v1/sys/seal',
    config: { standby: 'serve' },
    handler: async (_req, reply) => {
      await core.seal();
      return reply.code(204).send();
    },
  });

  const health = async (req: FastifyRequest<{ Querystring: HealthQuery }>, reply: FastifyReply) => {
    const q = req.query;
    const status = await core.sealStatus();
    const standby = !status.sealed && core.isStandby;
    // standbyok: a standby answers with the active code.
    const code = !status.initialized
      ? (q.uninitcode ?? 501)
      : status.sealed
        ? (q.sealedcode ?? 503)
        : standby && !q.standbyok
          ? (q.standbycode ?? 429)
          : (q.activecode ?? 200);
    const body = {
      initialized: status.initialized,
      sealed: status.sealed,
      standby,
      performance_standby: false,
      replication_performance_mode: 'disabled',
      replication_dr_mode: 'disabled',
      server_time_utc: Math.floor(Date.now() / 1000),
      version: status.version,
      ...(status.cluster_name ? { cluster_name: status.cluster_name, cluster_id: status.cluster_id } : {}),
    };
    return reply.code(code).send(req.method === 'HEAD' ? undefined : body);
  };
  app.route({ method: ['GET', 'HEAD'], url: '/v1/sys/health', config: { access: 'public', standby: 'serve' }, schema: { querystring: healthQuery }, handler: health });
}
