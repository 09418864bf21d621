import { BarrierView } from '../barrier/view.js';
import type { SecurityBarrier } from '../barrier/barrier.js';
import type { SecretsEngine } from '../engines/engine.js';
import { KvV1 } from '../engines/kv/v1.js';
import { KvV2 } from '../engines/kv/v2.js';
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
    /** The engines' clock (KV v2's version times and deletions); injectable for tests. */
    private readonly now: () => number = () => Date.now(),
  ) {}

  route(path: string): Routed | undefined {
    const mount = this.mounts.resolve(path);
    if (!mount) return undefined;
    let engine = this.engines.get(mount.uuid);
    if (!engine) {
      const view = new BarrierView(this.barrier, `logical/${mount.uuid}/`);
      engine = mount.options.version === '2' ? new KvV2(view, this.now) : new KvV1(view);
      this.engines.set(mount.uuid, engine);
    }
    return { mount, engine, path: path.slice(mount.path.length) };
  }

  /** Drops engines of mounts that are gone. */
  prune(): void {
    const live = new Set(this.mounts.list().map((m) => m.uuid));
    for (const uuid of this.engines.keys()) if (!live.has(uuid)) this.engines.delete(uuid);
  }
}
