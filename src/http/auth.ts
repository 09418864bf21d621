import type { FastifyRequest } from 'fastify';
import { SealedError } from '../barrier/errors.js';
import type { Core } from '../core/core.js';
import type { TokenEntry } from '../core/token-store.js';

/** How a route is guarded: `public` routes answer sealed and without a token (init, unseal, status, health). */
export type RouteAccess = 'public' | 'token';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    tokenEntry?: TokenEntry;
  }
}

export function clientToken(req: FastifyRequest): string | undefined {
  const header = req.headers['x-vault-token'];
  if (typeof header === 'string' && header) return header;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7);
  return undefined;
}

/** onRequest hook: sealed → 503 before anything else, then a valid token or 403. */
export function guard(core: Core) {
  return async (req: FastifyRequest): Promise<void> => {
    if (req.routeOptions.config.access === 'public') return;
    if (core.sealed) throw new SealedError();
    req.tokenEntry = await core.authenticate(clientToken(req));
  };
}
