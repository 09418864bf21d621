import type { BarrierView } from '../../barrier/view.js';
import { InvalidRequestError, NotFoundError } from '../../core/errors.js';
import { parseDuration } from '../../core/rotation.js';
import { jsonBuffer, type LogicalRequest, type LogicalResponse, type SecretsEngine } from '../engine.js';

/** Vault's default lease duration for KV v1 reads (768h), which clients use as a refresh hint. */
const KV_V1_LEASE_SECONDS = 2_764_800;

/** KV version 1: one unversioned JSON object per path. */
export class KvV1 implements SecretsEngine {
  constructor(private readonly view: BarrierView) {}

  async exists(path: string): Promise<boolean> {
    return path !== '' && !path.endsWith('/') && (await this.view.exists(path));
  }

  async handle(req: LogicalRequest): Promise<LogicalResponse | undefined> {
    const path = req.path;
    switch (req.operation) {
      case 'list': {
        const prefix = path === '' ? '' : path.replace(/\/*$/, '/');
        const keys = await this.view.list(prefix);
        if (keys.length === 0) throw new NotFoundError('');
        return { data: { keys } };
      }
      case 'read': {
        if (path === '') throw new NotFoundError('');
        const data = await this.view.getJson<Record<string, unknown>>(path);
        if (!data) throw new NotFoundError('');
        return { data, leaseDuration: leaseSeconds(data) };
      }
      case 'update': {
        requirePath(path);
        if (Object.keys(req.data).length === 0) throw new InvalidRequestError('missing data fields');
        if (req.data.ttl !== undefined) parseDuration(req.data.ttl, 'ttl');
        await this.view.put(path, jsonBuffer(req.data));
        return undefined;
      }
      case 'delete':
        requirePath(path);
        await this.view.delete(path);
        return undefined;
      case 'patch':
        throw new InvalidRequestError('KV version 1 does not support PATCH; write the whole secret with PUT or POST');
    }
  }
}

/** As in Vault, a "ttl" field in the secret is the lease duration its reads announce (one stored before writes checked it falls back). */
function leaseSeconds(data: Record<string, unknown>): number {
  if (data.ttl === undefined) return KV_V1_LEASE_SECONDS;
  try {
    return parseDuration(data.ttl, 'ttl');
  } catch {
    return KV_V1_LEASE_SECONDS;
  }
}

function requirePath(path: string): void {
  if (path === '' || path.endsWith('/')) throw new InvalidRequestError('a secret path is required (it may not end with "/")');
}
