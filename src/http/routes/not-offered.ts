import type { FastifyInstance } from 'fastify';
import { HttpError } from '../errors.js';

/**
 * Vault areas keyward does not have, that an everyday Vault client may still call: each path
 * prefix (below /v1/) and why the area is absent. A call there gets a 400 naming the area, where
 * it would otherwise meet a bare "no handler for route" 404 that reads like a typo in the path.
 * The prefixes are Vault's own reserved paths: none can be a secrets-engine mount, and none is
 * served by another keyward route (sys/auth, sys/wrapping, auth/* and cubbyhole/* are).
 */
export const NOT_OFFERED: ReadonlyArray<{ prefix: string; area: string; why: string }> = [
  { prefix: 'sys/leases', area: 'leases', why: 'secrets are not leased (KV and transit answers carry no lease_id); tokens are renewed and revoked under auth/token/' },
  { prefix: 'sys/renew', area: 'leases', why: 'secrets are not leased (KV and transit answers carry no lease_id); tokens are renewed under auth/token/' },
  { prefix: 'sys/revoke', area: 'leases', why: 'secrets are not leased (KV and transit answers carry no lease_id); tokens are revoked under auth/token/' },
  { prefix: 'sys/revoke-prefix', area: 'leases', why: 'secrets are not leased (KV and transit answers carry no lease_id); tokens are revoked under auth/token/' },
  { prefix: 'sys/revoke-force', area: 'leases', why: 'secrets are not leased (KV and transit answers carry no lease_id); tokens are revoked under auth/token/' },
  { prefix: 'identity', area: 'the identity store', why: 'no entities, aliases, groups or OIDC identity tokens; a token carries its policies itself' },
  { prefix: 'sys/namespaces', area: 'namespaces', why: 'there is one namespace, the root' },
  { prefix: 'sys/storage', area: 'integrated (raft) storage', why: 'storage is a file directory or PostgreSQL; back it up as such (see docs/RELIABILITY.md)' },
  { prefix: 'sys/replication', area: 'replication', why: 'nodes share one storage backend (docs/HA.md) rather than replicate' },
  { prefix: 'sys/plugins', area: 'plugins', why: 'the engines (kv, transit) and auth methods (token, approle, userpass, cert, jwt) are built in' },
  { prefix: 'sys/license', area: 'licensing', why: 'there is no license to read or install' },
  { prefix: 'sys/quotas', area: 'quotas', why: 'only the key-share endpoints are rate limited, by the listener' },
  { prefix: 'sys/raw', area: 'raw storage access', why: 'storage holds only barrier ciphertext, read and written through the API' },
  { prefix: 'sys/tools', area: 'sys/tools', why: 'random bytes and hashes come from transit (transit/random, transit/hash)' },
  { prefix: 'sys/mfa', area: 'multi-factor authentication', why: 'tokens come from the auth methods alone' },
  { prefix: 'sys/control-group', area: 'control groups', why: 'a request is authorized by its token\'s policies alone' },
  { prefix: 'sys/config', area: 'runtime server configuration', why: 'the server is configured by its configuration file' },
];

const METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'] as const;

/**
 * One route per prefix (the prefix itself and anything below it), each answering 400 with the
 * area's reason. Any valid token may ask: the answer is the same for every caller and names no
 * data, and a token with only the default policy (which grants sys/leases/renew in Vault) must
 * learn that leases are absent, not that it lacks a permission.
 */
export async function notOfferedRoutes(app: FastifyInstance): Promise<void> {
  for (const { prefix, area, why } of NOT_OFFERED) {
    const handler = async (): Promise<never> => {
      throw new HttpError(400, `keyward does not offer ${area}: ${why}`);
    };
    for (const url of [`/v1/${prefix}`, `/v1/${prefix}/*`]) app.route({ method: [...METHODS], url, config: { access: 'any-token' }, handler });
  }
}
