import type { FastifyRequest } from 'fastify';
import { SealedError } from '../barrier/errors.js';
import type { Core } from '../core/core.js';
import type { Capability } from '../core/policy.js';
import type { TokenEntry } from '../core/token-store.js';
import { clientAddress } from './forwarded-client.js';

/**
 * How a route is guarded: `public` routes answer sealed and without a token (init, unseal,
 * status, health, rekey); `any-token` routes need a valid token but no policy (which engine
 * serves a path, as Vault's CLI asks); `auth-method` routes (auth/<path>/...) take no token on
 * the method's login paths and are treated as `token` elsewhere; `wrapping` routes
 * (sys/wrapping/unwrap, lookup, rewrap) are refused sealed and check the wrapping token, then any
 * caller's token, themselves (Vault answers an invalid wrapping token 400 before any ACL check);
 * all others need the capability their path and method ask.
 */
export type RouteAccess = 'public' | 'any-token' | 'auth-method' | 'wrapping' | 'token';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
    /** An unauthenticated endpoint that takes key shares: rate limited per client. */
    quorum?: boolean;
    /** A GET that answers `?list=true` with a listing, and so needs `list` rather than `read` for it. */
    lists?: boolean;
  }
  interface FastifyRequest {
    tokenEntry?: TokenEntry;
    /** The client token as given (for the token endpoints that act on "self"). */
    clientToken?: string;
  }
}

/** Paths that need `sudo` on top of the operation's capability, as Vault marks them. */
const SUDO_PATHS = [
  /^sys\/rotate$/,
  /^sys\/rotate\/(config|rewrap|prune)$/,
  /^sys\/seal$/,
  /^sys\/step-down$/,
  /^sys\/audit(\/.*)?$/,
  /^sys\/rekey\/backup$/,
  /^sys\/remount$/,
  /^sys\/auth\/.+$/,
  /^auth\/token\/accessors\/?$/,
  /^auth\/token\/create-orphan$/,
  /^auth\/token\/revoke-orphan$/,
];

export function clientToken(req: FastifyRequest): string | undefined {
  const header = req.headers['x-vault-token'];
  if (typeof header === 'string' && header) return header;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7);
  return undefined;
}

/** Vault's spellings of true for a boolean query parameter (Go's strconv.ParseBool); hvac sends `list=True`. */
const TRUE_SPELLINGS = new Set(['1', 't', 'T', 'true', 'True', 'TRUE']);

/** Whether a request asks for a listing with `?list=true` (in any of Vault's spellings). */
export function listRequested(req: FastifyRequest): boolean {
  const list = (req.query as Record<string, string | undefined> | undefined)?.list;
  return list !== undefined && TRUE_SPELLINGS.has(list);
}

/** The API path a request names, below /v1/, decoded and without the query. */
export function apiPath(req: FastifyRequest): string {
  const pathname = req.url.split('?')[0]!.replace(/^\/v1\//, '');
  try {
    return decodeURIComponent(pathname);
  } catch {
    return pathname;
  }
}

/** The capability a request needs on its path, in Vault's terms (a write is "create" when nothing is there yet; in cubbyhole/, in the caller's own). */
async function capabilityFor(core: Core, req: FastifyRequest, path: string, caller: TokenEntry): Promise<Capability> {
  switch (req.method) {
    case 'GET':
    case 'HEAD': {
      // Elsewhere ?list=true changes nothing the route answers, so it cannot trade read for list.
      return req.routeOptions.config.lists && listRequested(req) ? 'list' : 'read';
    }
    case 'DELETE':
      return 'delete';
    case 'PATCH':
      return 'patch';
    default: {
      if (path.startsWith('auth/')) {
        const method = core.authMethods.route(path.slice(5));
        return method && !(await method.method.exists(method.path)) ? 'create' : 'update';
      }
      if (path.startsWith('cubbyhole/')) return (await core.cubbyholes.exists(caller, path.slice('cubbyhole/'.length))) ? 'update' : 'create';
      const routed = path.startsWith('sys/') ? undefined : core.router.route(path);
      if (!routed) return 'update';
      return (await routed.engine.exists(routed.path)) ? 'update' : 'create';
    }
  }
}

/**
 * The onRequest check: sealed → 503 before anything else, then a token whose policies allow the
 * request, or 403. Public routes pass without a promise, the others resolve when authorized.
 */
export function guard(core: Core): (req: FastifyRequest) => Promise<void> | undefined {
  return (req) => {
    const access = req.routeOptions.config.access;
    if (access === 'public') return undefined;
    if (core.sealed) return Promise.reject(new SealedError());
    if (access === 'auth-method' && isLoginRequest(core, req)) return undefined;
    if (access === 'wrapping') return undefined;
    return authorizeToken(core, req, access);
  };
}

/** Whether a request under auth/ is for a login path of the method mounted there (Vault's unauthenticated paths). */
function isLoginRequest(core: Core, req: FastifyRequest): boolean {
  const routed = core.authMethods.route((req.params as { '*': string })['*']);
  return routed !== undefined && routed.method.isLoginPath(routed.path);
}

async function authorizeToken(core: Core, req: FastifyRequest, access: RouteAccess | undefined): Promise<void> {
  const token = clientToken(req);
  req.clientToken = token;
  if (access === 'any-token') {
    req.tokenEntry = await core.tokens.lookup(token);
    core.tokens.checkAddress(req.tokenEntry, clientAddress(req));
    await core.tokens.use(req.tokenEntry);
    return;
  }
  req.tokenEntry = await core.authorize(
    token,
    async (entry) => {
      const raw = apiPath(req);
      const capability = await capabilityFor(core, req, raw, entry);
      return { capability, path: capability === 'list' && !raw.endsWith('/') ? `${raw}/` : raw, sudo: SUDO_PATHS.some((re) => re.test(raw)) };
    },
    clientAddress(req),
  );
}
