import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { shareBody } from '../schemas.js';
import { clientToken } from '../auth.js';
import { clientAddress } from '../forwarded-client.js';
import { envelope } from '../envelope.js';

const initBody = {
  type: 'object',
  properties: {
    secret_shares: { type: 'integer' },
    secret_threshold: { type: 'integer' },
    pgp_keys: { type: 'array', items: { type: 'string' } },
    backup: { type: 'boolean' },
    require_verification: { type: 'boolean' },
    target: { type: 'string', enum: ['barrier'] },
  },
  required: ['secret_shares', 'secret_threshold'],
} as const;

interface InitBody {
  secret_shares: number;
  secret_threshold: number;
  pgp_keys?: string[];
  backup?: boolean;
  require_verification?: boolean;
}

interface ShareBody {
  key: string;
  nonce: string;
}

/**
 * sys/rekey/{init,update,verify,backup}. As in Vault, init/update/verify need no token:
 * the current (or new) shares are the authorization. Reading or deleting the backup does.
 */
export async function rekeyRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  const rekey = core.rekey;
  const write = ['PUT', 'POST'] as ['PUT', 'POST'];
  const publicRoute = { access: 'public' as const };

  app.get('/v1/sys/rekey/init', { config: publicRoute }, () => core.locked(() => rekey.status()));

  app.route<{ Body: InitBody }>({
    method: write,
    url: '/v1/sys/rekey/init',
    config: publicRoute,
    schema: { body: initBody },
    handler: (req) =>
      core.locked(() =>
        rekey.start({
          secretShares: req.body.secret_shares,
          secretThreshold: req.body.secret_threshold,
          pgpKeys: req.body.pgp_keys ?? [],
          backup: req.body.backup ?? false,
          requireVerification: req.body.require_verification ?? false,
        }),
      ),
  });

  app.delete('/v1/sys/rekey/init', { config: publicRoute }, async (req, reply) => {
    await core.locked(async () => {
      rekey.cancel();
      // Discarding a rekey that awaits completion can leave holders of only the new shares out:
      // unlike a cancel, it takes a token with sudo.
      if (await rekey.pendingRecord()) {
        await core.authorize(clientToken(req), async () => ({ capability: 'delete', path: 'sys/rekey/init', sudo: true }), clientAddress(req));
        await rekey.discardPending();
      }
    });
    return reply.code(204).send();
  });

  app.route<{ Body: ShareBody }>({
    method: write,
    url: '/v1/sys/rekey/update',
    config: { ...publicRoute, quorum: true },
    schema: { body: shareBody },
    handler: async (req, reply) => {
      const answer = await core.locked(() => rekey.update(req.body.key, req.body.nonce));
      // The switch to the new shares waits until the reply carrying them has been handed to the
      // socket; a reply that never leaves leaves the rekey pending, and the old shares in use.
      if ('keys' in answer && !answer.verification_required) reply.raw.once('finish', () => core.finishRekeyAfterReply(answer.nonce));
      return answer;
    },
  });

  app.get('/v1/sys/rekey/verify', { config: publicRoute }, () => core.locked(async () => rekey.verifyStatus()));

  app.route<{ Body: ShareBody }>({
    method: write,
    url: '/v1/sys/rekey/verify',
    config: { ...publicRoute, quorum: true },
    schema: { body: shareBody },
    handler: (req) => core.locked(() => rekey.verify(req.body.key, req.body.nonce)),
  });

  app.delete('/v1/sys/rekey/verify', { config: publicRoute }, () => core.locked(async () => rekey.verifyCancel()));

  app.get('/v1/sys/rekey/backup', async (req) => envelope(req.id, await rekey.readBackup()));

  app.delete('/v1/sys/rekey/backup', async (_req, reply) => {
    await core.locked(() => rekey.deleteBackup());
    return reply.code(204).send();
  });
}
