import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

/**
 * Vault request headers keyward does not implement, where ignoring them would leak: a client that
 * names a namespace must not be served the root namespace's data, so it is refused. (Response
 * wrapping, X-Vault-Wrap-TTL, is implemented: see response-wrapping.ts.)
 */
export function unsupportedHeaderError(req: FastifyRequest): HttpError | undefined {
  const namespace = req.headers['x-vault-namespace'];
  if (namespace !== undefined && !['', '/', 'root', 'root/'].includes(String(namespace))) {
    return new HttpError(400, `namespaces are not supported: only the root namespace exists, and X-Vault-Namespace "${String(namespace)}" would be served its data`);
  }
  return undefined;
}
