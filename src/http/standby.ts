import type { FastifyReply, FastifyRequest } from 'fastify';
import { request } from 'undici';
import type { Core } from '../core/core.js';
import { HttpError } from './errors.js';
import { clientAddress, forwardedClientHeaders } from './forwarded-client.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answered by a standby itself (health, leader, seal state, unseal); the rest goes to the active node. */
    standby?: 'serve';
  }
  interface FastifyRequest {
    /** Answered by the active node on this standby's behalf: not audited here. */
    forwarded?: boolean;
  }
}

/** Names the node that answered; a forwarded reply keeps the active node's. */
export const NODE_HEADER = 'x-keyward-node';
const FORWARDED_BY = 'x-keyward-forwarded-by';
// Hop-by-hop headers (RFC 9110 §7.6.1) and those the HTTP client or server sets itself.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'content-length']);

/**
 * Transit operations a standby serves with the keys it reads from storage: none writes (an
 * encryption counts against its key version's limit, so encrypt, rewrap and datakey go to the
 * active node, which keeps the counts).
 */
const TRANSIT_ON_STANDBY = new Set(['decrypt', 'sign', 'verify', 'hmac', 'hash', 'random']);

/** Whether a standby answers this request itself: its own routes, KV reads (GET and list) and transit's read-only operations. */
function servedByStandby(core: Core, req: FastifyRequest): boolean {
  if (req.is404) return true;
  // A wrapped reply is stored behind a new token, which only the active node can write.
  if (req.wrapTtl) return false;
  if (req.routeOptions.config.standby === 'serve') return true;
  if (req.routeOptions.url !== '/v1/*') return false;
  const path = (req.params as { '*': string })['*'];
  if (path.startsWith('sys/')) return false;
  const routed = core.router.route(path);
  if (req.method === 'GET') return routed !== undefined;
  return routed?.mount.type === 'transit' && (req.method === 'POST' || req.method === 'PUT') && TRANSIT_ON_STANDBY.has(routed.path.split('/')[0]!);
}

/**
 * A standby sends what it does not serve to the active node: forwarded (the reply, with the
 * active node's X-Keyward-Node, comes back through this node) or as a 307 to its address.
 */
export class StandbyRouter {
  constructor(
    private readonly core: Core,
    private readonly mode: 'forward' | 'redirect',
  ) {}

  /** Whether this node is a standby and the request goes to the active node. */
  takes(req: FastifyRequest): boolean {
    return this.core.isStandby && !servedByStandby(this.core, req);
  }

  /** Whether a read this standby began, and failed for want of a write or a term not yet learnt, may go to the active node. */
  mayRetryOnActive(req: FastifyRequest): boolean {
    return this.core.isStandby && !req.forwarded && (req.method === 'GET' || servedByStandby(this.core, req));
  }

  async sendToActive(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    req.forwarded = true;
    if (req.headers[FORWARDED_BY]) {
      throw new HttpError(503, `request forwarded by ${String(req.headers[FORWARDED_BY])} reached a standby: the active node changed meanwhile; retry`);
    }
    const active = await this.core.ha!.activeAddress();
    if (!active) throw new HttpError(503, 'no active node at the moment (an election is under way); retry shortly');
    if (this.mode === 'redirect') return reply.code(307).header('Location', `${active}${req.url}`).send();

    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    headers[FORWARDED_BY] = this.core.nodeId;
    headers['x-forwarded-for'] = clientAddress(req);
    Object.assign(headers, await forwardedClientHeaders(this.core, req));
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD' && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
    let res;
    try {
      res = await request(`${active}${req.url}`, {
        method: req.method as 'GET',
        headers,
        // A request this node began to serve has had its body read: it goes on re-serialized.
        body: !hasBody ? undefined : req.body === undefined ? req.raw : JSON.stringify(req.body),
      });
    } catch (err) {
      throw new HttpError(503, `the active node at ${active} did not answer (${(err as Error).message}); retry`);
    }
    const body = Buffer.from(await res.body.arrayBuffer());
    for (const [name, value] of Object.entries(res.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) reply.header(name, value);
    return reply.code(res.statusCode).send(body.length ? body : undefined);
  }
}
