import type { SecurityBarrier } from '../barrier/barrier.js';
import { BarrierView } from '../barrier/view.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import type { TokenEntry, TokenStore } from './token-store.js';

const CUBBYHOLE_PREFIX = 'sys/cubbyhole/';

/**
 * Vault's cubbyhole: each token's private key/value store (KV version 1 semantics), kept through
 * the barrier under `sys/cubbyhole/<accessor>/`. Every operation takes the calling token's entry
 * and reaches only that token's prefix, so no other token, root included, can name it. A revoked
 * token's cubbyhole is deleted (TokenStore.onRevoked); `sweep` removes those of expired tokens.
 */
export class CubbyholeStore {
  constructor(private readonly barrier: SecurityBarrier) {}

  async read(owner: TokenEntry, path: string): Promise<Record<string, unknown> | undefined> {
    if (path === '' || path.endsWith('/')) return undefined;
    return this.view(owner.accessor).getJson<Record<string, unknown>>(path);
  }

  async exists(owner: TokenEntry, path: string): Promise<boolean> {
    return path !== '' && !path.endsWith('/') && (await this.view(owner.accessor).exists(path));
  }

  async write(owner: TokenEntry, path: string, data: Record<string, unknown>): Promise<void> {
    requireEntryPath(path);
    if (Object.keys(data).length === 0) throw new InvalidRequestError('missing data fields');
    await this.view(owner.accessor).put(path, Buffer.from(JSON.stringify(data)));
  }

  async delete(owner: TokenEntry, path: string): Promise<void> {
    requireEntryPath(path);
    await this.view(owner.accessor).delete(path);
  }

  /** The keys below `prefix` ("" for the top), folders ending in "/"; NotFoundError when there are none, as KV answers. */
  async list(owner: TokenEntry, prefix: string): Promise<string[]> {
    const keys = await this.view(owner.accessor).list(prefix === '' ? '' : prefix.replace(/\/*$/, '/'));
    if (keys.length === 0) throw new NotFoundError('');
    return keys;
  }

  /** Deletes everything in the cubbyhole of the token with `accessor` (the token is gone, so nothing can reach it meanwhile). */
  destroy(accessor: string): Promise<void> {
    return this.view(accessor).deleteAll();
  }

  /**
   * Deletes the cubbyholes of tokens that have expired or no longer exist: an expired token is
   * refused at once, but revoked (and its cubbyhole deleted) only when next presented, which a
   * wrapping token that was never unwrapped never is. Returns how many were removed.
   */
  async sweep(tokens: TokenStore, nowMs: number): Promise<number> {
    let removed = 0;
    for (const owner of await this.barrier.list(CUBBYHOLE_PREFIX)) {
      const accessor = owner.replace(/\/$/, '');
      const entry = await tokens.lookupAccessor(accessor).catch((err: unknown) => {
        if (err instanceof InvalidRequestError) return undefined;
        throw err;
      });
      if (entry && !(entry.expire_time && entry.expire_time <= nowMs)) continue;
      if (entry) await tokens.revoke(entry, false);
      else await this.destroy(accessor);
      removed++;
    }
    return removed;
  }

  private view(accessor: string): BarrierView {
    return new BarrierView(this.barrier, `${CUBBYHOLE_PREFIX}${accessor}/`);
  }
}

function requireEntryPath(path: string): void {
  if (path === '' || path.endsWith('/')) throw new InvalidRequestError('a cubbyhole path is required (it may not end with "/")');
}
