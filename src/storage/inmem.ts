import { childrenOf, type StorageBackend, type StorageOp, validateKey, validatePrefix } from './backend.js';

/** Entries in a Map: for tests and benchmarks. Values are copied in and out so callers cannot alias them. */
export class InmemBackend implements StorageBackend {
  readonly type = 'inmem';
  private readonly entries = new Map<string, Buffer>();

  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const v = this.entries.get(key);
    return v && Buffer.from(v);
  }

  async put(key: string, value: Buffer): Promise<void> {
    validateKey(key);
    this.entries.set(key, Buffer.from(value));
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.entries.delete(key);
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    return childrenOf(this.entries.keys(), prefix);
  }

  async transaction(ops: readonly StorageOp[]): Promise<void> {
    for (const op of ops) validateKey(op.key);
    for (const op of ops) {
      if (op.kind === 'put') this.entries.set(op.key, Buffer.from(op.value));
      else this.entries.delete(op.key);
    }
  }

  async close(): Promise<void> {}
}
