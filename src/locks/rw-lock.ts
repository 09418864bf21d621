/**
 * A readers-writer lock for async code: many single-entry operations at once, or one
 * transaction alone, so no reader sees a transaction half applied. Writers are not starved:
 * once one waits, new readers queue behind it.
 */
export class RwLock {
  private readers = 0;
  private writing = false;
  private readonly queue: Array<{ write: boolean; resume: () => void }> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writing || this.queue.length > 0) await new Promise<void>((resume) => this.queue.push({ write: false, resume }));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.next();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writing || this.readers > 0 || this.queue.length > 0) {
      await new Promise<void>((resume) => this.queue.push({ write: true, resume }));
    } else this.writing = true;
    try {
      return await fn();
    } finally {
      this.writing = false;
      this.next();
    }
  }

  private next(): void {
    if (this.writing) return;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.write) {
        if (this.readers > 0) return;
        this.queue.shift();
        this.writing = true;
        head.resume();
        return;
      }
      this.queue.shift();
      this.readers++;
      head.resume();
    }
  }
}
