/**
 * Stored bytes (ciphertext, as on disk) of recently used entries, least recently used first out,
 * within a byte budget. Only for a backend that is its own data's single writer, which keeps it
 * current on every write and delete.
 */
export class EntryCache {
  private readonly entries = new Map<string, Buffer | null>();
  private bytes = 0;

  constructor(private readonly budgetBytes: number) {}

  /** The cached bytes, null for an entry known to be absent, undefined when not cached. */
  get(key: string): Buffer | null | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  set(key: string, value: Buffer | null): void {
    this.drop(key);
    const size = (value?.length ?? 0) + key.length;
    if (size > this.budgetBytes / 16) return;
    this.entries.set(key, value);
    this.bytes += size;
    for (const [oldest, v] of this.entries) {
      if (this.bytes <= this.budgetBytes) break;
      this.entries.delete(oldest);
      this.bytes -= (v?.length ?? 0) + oldest.length;
    }
  }

  drop(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    this.entries.delete(key);
    this.bytes -= (old?.length ?? 0) + key.length;
  }
}
