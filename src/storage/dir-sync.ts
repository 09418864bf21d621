import { closeSync, fsync, openSync } from 'node:fs';
import { promisify } from 'node:util';

const fsyncAsync = promisify(fsync);

export async function fsyncPath(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

interface DirState {
  running?: Promise<void>;
  next?: Promise<void>;
}

/**
 * Group commit for directory fsyncs: a caller is covered by an fsync of the directory that
 * starts after its rename. While one runs, every new caller joins the single next one, so N
 * concurrent writes into a directory cost about two directory fsyncs, not N.
 */
export class DirSyncer {
  private readonly dirs = new Map<string, DirState>();

  sync(dir: string): Promise<void> {
    let state = this.dirs.get(dir);
    if (!state) {
      state = {};
      this.dirs.set(dir, state);
    }
    const running = state.running;
    if (!running) return this.start(dir, state);
    if (!state.next) {
      const s = state;
      s.next = running
        .catch(() => undefined)
        .then(() => {
          s.next = undefined;
          return this.start(dir, s);
        });
      return s.next;
    }
    return state.next;
  }

  private start(dir: string, state: DirState): Promise<void> {
    const run: Promise<void> = fsyncPath(dir).finally(() => {
      if (state.running === run) state.running = undefined;
      if (!state.running && !state.next) this.dirs.delete(dir);
    });
    state.running = run;
    return run;
  }
}
