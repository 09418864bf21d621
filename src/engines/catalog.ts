import type { BarrierView } from '../barrier/view.js';
import type { MountEntry } from '../core/mounts.js';
import type { Token } from '../pkcs11/token.js';
import type { SecretsEngine } from './engine.js';
import { KvV1 } from './kv/v1.js';
import { KvV2 } from './kv/v2.js';
import { TransitEngine } from './transit/engine.js';

/** What engines are built with besides their barrier view. */
export interface EngineDeps {
  /** Transit keys are generated and used inside the token. */
  token: Token;
  /** The engines' clock (KV v2's version times, transit's key times); injectable for tests. */
  now: () => number;
}

/** The engine serving a mount, by its type and options. */
export function createEngine(mount: MountEntry, view: BarrierView, deps: EngineDeps): SecretsEngine {
  switch (mount.type) {
    case 'kv':
      return mount.options.version === '2' ? new KvV2(view, deps.now) : new KvV1(view);
    case 'transit':
      return new TransitEngine(view, deps.token, deps.now);
    case 'cubbyhole':
      // The mount table never routes cubbyhole/ (each token's store is served by its own route).
      throw new Error('cubbyhole/ is not served by an engine');
  }
}
