import { childrenOf, type StorageBackend, type StorageOp, validateKey, validatePrefix } from './backend.js';

/**
 * Entries in a Map: for tests and benchmarks. Values are kept by reference, not copied: the
 * barrier never mutates a buffer after handing it over, and copying would dominate large values.
 */
export class InmemBackend implements StorageBackend {
  readonly type = 'inmem';
  private readonly entries = new Map<string, Buffer>();

  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    return this.entries.get(key);
  }

  async put(key: string, value: Buffer): Promise<void> {
    validateKey(key);
    this.entries.set(key, value);
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
      if (op.kind === 'put') this.entries.set(op.key, op.value);
      else this.entries.delete(op.key);
    }
  }

  async compareAndSwap(key: string, expected: Buffer, next: Buffer): Promise<boolean> {
    validateKey(key);
    const current = this.entries.get(key);
    if (!current || !current.equals(expected)) return false;
    this.entries.set(key, next);
    return true;
  }

  async close(): Promise<void> {}
}
