import type { BarrierOp, SecurityBarrier } from './barrier.js';

/** The barrier seen from under a prefix, so an engine cannot name entries outside its own mount. */
export class BarrierView {
  constructor(
    private readonly barrier: SecurityBarrier,
    readonly prefix: string,
  ) {}

  get(path: string): Promise<Buffer | undefined> {
    return this.barrier.get(this.prefix + path);
  }

  exists(path: string): Promise<boolean> {
    return this.barrier.exists(this.prefix + path);
  }

  put(path: string, value: Buffer): Promise<void> {
    return this.barrier.put(this.prefix + path, value);
  }

  delete(path: string): Promise<void> {
    return this.barrier.delete(this.prefix + path);
  }

  list(prefix: string): Promise<string[]> {
    return this.barrier.list(this.prefix + prefix);
  }

  transaction(ops: readonly BarrierOp[]): Promise<void> {
    return this.barrier.transaction(ops.map((op) => ({ ...op, path: this.prefix + op.path })));
  }

  async getJson<T>(path: string): Promise<T | undefined> {
    const raw = await this.get(path);
    return raw && (JSON.parse(raw.toString('utf8')) as T);
  }

  /** Deletes every entry under the view, one by one (a mount's, an auth method's or a cubbyhole's data once nothing can reach it). */
  async deleteAll(): Promise<void> {
    for (const key of await this.walk('')) await this.delete(key);
  }

  /** Every entry under `prefix`, depth first (for unmount and metadata deletes). */
  async walk(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for (const child of await this.list(prefix)) {
      if (child.endsWith('/')) out.push(...(await this.walk(prefix + child)));
      else out.push(prefix + child);
    }
    return out;
  }
}
