import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

/**
 * Vault request headers keyward does not implement, where ignoring them would leak: a client that
 * asks for a wrapped response must not get the secret in clear, and one that names a namespace
 * must not be served the root namespace's data. Both are refused until they are implemented.
 */
export function unsupportedHeaderError(req: FastifyRequest): HttpError | undefined {
  if (req.headers['x-vault-wrap-ttl'] !== undefined) {
    return new HttpError(400, 'response wrapping (X-Vault-Wrap-TTL) is not supported: the response would carry the secret in clear; send the request without it');
  }
  const namespace = req.headers['x-vault-namespace'];
  if (namespace !== undefined && !['', '/', 'root', 'root/'].includes(String(namespace))) {
    return new HttpError(400, `namespaces are not supported: only the root namespace exists, and X-Vault-Namespace "${String(namespace)}" would be served its data`);
  }
  return undefined;
}
