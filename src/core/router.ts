import { BarrierView } from '../barrier/view.js';
import type { SecurityBarrier } from '../barrier/barrier.js';
import { createEngine, type EngineDeps } from '../engines/catalog.js';
import type { SecretsEngine } from '../engines/engine.js';
import type { MountEntry, MountTable } from './mounts.js';

export interface Routed {
  mount: MountEntry;
  engine: SecretsEngine;
  /** The request path below the mount point. */
  path: string;
}

/** Finds the engine for a logical path; engines are kept per mount so their per-path locks are shared. */
export class LogicalRouter {
  private readonly engines = new Map<string, SecretsEngine>();

  constructor(
    private readonly barrier: SecurityBarrier,
    private readonly mounts: MountTable,
    private readonly deps: EngineDeps,
  ) {}

  route(path: string): Routed | undefined {
    const mount = this.mounts.resolve(path);
    if (!mount) return undefined;
    const key = engineKey(mount);
    let engine = this.engines.get(key);
    if (!engine) {
      engine = createEngine(mount, new BarrierView(this.barrier, `logical/${mount.uuid}/`), this.deps);
      this.engines.set(key, engine);
    }
    return { mount, engine, path: path.slice(mount.path.length) };
  }

  /** Drops engines of mounts that are gone, or were built for options a mount no longer has (a KV upgrade). */
  prune(): void {
    const live = new Set(this.mounts.list().map(engineKey));
    for (const key of this.engines.keys()) if (!live.has(key)) this.engines.delete(key);
  }
}

/** What a mount's engine is built from, so a mount whose options change gets a new one. */
function engineKey(mount: MountEntry): string {
  return `${mount.uuid}:${mount.type}:${mount.options.version ?? ''}`;
}
