import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { sysReply } from '../envelope.js';

/**
 * sys/hsm (keyward's own): the PKCS#11 module and token this node uses, and what it found out
 * about them (IV style, key-wrap mechanisms, where calls run). Node-local, so a standby answers
 * for itself; it needs `read` on sys/hsm like any path.
 */
export async function hsmRoutes(app: FastifyInstance, opts: { core: Core }): Promise<void> {
  const { core } = opts;
  app.get('/v1/sys/hsm', { config: { standby: 'serve' } }, async (req) => {
    const t = core.tokenDescription();
    return sysReply(req.id, {
      library: t.library,
      token_label: t.tokenLabel ?? null,
      slot: t.slot ?? null,
      seal_key_label: t.sealKeyLabel,
      iv_policy: t.ivPolicy,
      iv_style: t.ivStyle ?? null,
      key_wrap: t.keyWrap ?? null,
      connected: t.connected,
      dispatch: t.dispatch
        ? { mode: t.dispatch.mode, max_parallel: t.dispatch.maxParallel, round_trip_us: t.dispatch.roundTripUs, token_session_limit: t.dispatch.tokenSessionLimit ?? null }
        : null,
    });
  });
}
