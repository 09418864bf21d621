import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { InvalidRequestError, PermissionDeniedError } from '../src/core/errors.js';
import { type TokenEntry, TokenStore } from '../src/core/token-store.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { freshProcessToken } from './support/softhsm.js';

const MAX_TTL = 7200;
const DEFAULT_TTL = 900;

/** One step of a token tree's life: a token makes a child, time passes, a token renews, a token is used. */
type Step =
  | { kind: 'create'; parent: number; ttl: number; explicitMax: number; numUses: number; orphan: boolean }
  | { kind: 'wait'; seconds: number }
  | { kind: 'renew'; token: number; increment: number }
  | { kind: 'use'; token: number };

const seconds = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 600 }), fc.integer({ min: 601, max: 10 * MAX_TTL }));
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('create' as const), parent: fc.nat(), ttl: seconds, explicitMax: seconds, numUses: fc.nat({ max: 3 }), orphan: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), seconds }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('renew' as const), token: fc.nat(), increment: seconds }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('use' as const), token: fc.nat() }) },
);

describe('token lifetimes and use limits, over generated token trees', () => {
  let barrier: TokenBarrier;
  let rootToken: string;

  beforeAll(async () => {
    const t = await freshProcessToken();
    const token = new Token(t.config);
    token.ensureSealKey(true);
    barrier = new TokenBarrier(new InmemBackend(), token);
    const rootKey = token.importKey(Buffer.alloc(32, 7));
    const blob = rootKey.blob;
    const init = TokenStore.initialRoot();
    rootToken = init.token;
    await barrier.initialize(rootKey, init.ops);
    token.releaseKey(rootKey);
    await barrier.unseal(token.loadKey(blob));
  });

  /** The entry a token looks up to now, or undefined when it is refused (lookup revokes an expired one). */
  const live = async (store: TokenStore, token: string): Promise<TokenEntry | undefined> =>
    store.lookup(token).catch((err: unknown) => {
      if (err instanceof PermissionDeniedError) return undefined;
      throw err;
    });

  it('never lets a token outlive its parent, the system maximum or its explicit max, whatever the tree', async () => {
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        let clock = 1_800_000_000_000;
        const store = new TokenStore(barrier, () => clock, { defaultTtl: DEFAULT_TTL, maxTtl: MAX_TTL });
        const tokens = [rootToken];
        const byAccessor = new Map<string, string>();
        byAccessor.set((await store.lookup(rootToken)).accessor, rootToken);
        for (const s of steps) {
          if (s.kind === 'wait') clock += s.seconds * 1000;
          else {
            const token = tokens[(s.kind === 'create' ? s.parent : s.token) % tokens.length]!;
            const entry = await live(store, token);
            if (!entry) continue;
            if (s.kind === 'create') {
              const made = await store
                .create(entry, { policies: ['a'], ttl: s.ttl, explicit_max_ttl: s.explicitMax, num_uses: s.numUses, no_parent: s.orphan }, 'p')
                .catch((err: Error) => err);
              if (made instanceof Error) {
                // The only refusal a live parent may meet: it has a use limit.
                expect(entry.num_uses, made.message).toBeGreaterThan(0);
                continue;
              }
              tokens.push(made.token);
              byAccessor.set(made.entry.accessor, made.token);
            } else if (s.kind === 'renew') {
              await store.renew(entry, s.increment).catch((err: unknown) => {
                // Refused only when the parent is gone, or for a token made not renewable (the root token).
                if (!(err instanceof PermissionDeniedError || (err instanceof InvalidRequestError && !entry.renewable))) throw err;
              });
            } else await store.use(entry);
          }
          for (const token of tokens) {
            const entry = await live(store, token);
            if (!entry || entry.policies.includes('root')) continue;
            checked++;
            expect(entry.expire_time).toBeGreaterThan(clock);
            expect(entry.expire_time - clock).toBeLessThanOrEqual(MAX_TTL * 1000);
            if (entry.explicit_max_ttl) expect(entry.expire_time).toBeLessThanOrEqual((entry.creation_time + entry.explicit_max_ttl) * 1000);
            if (entry.parent) {
              const parent = await live(store, byAccessor.get(entry.parent)!);
              expect(parent, `the parent of a live token (${entry.accessor}) is gone`).toBeDefined();
              if (parent!.expire_time) expect(entry.expire_time).toBeLessThanOrEqual(parent!.expire_time);
            }
          }
        }
      }),
      { numRuns: 200 },
    );
    expect(checked).toBeGreaterThan(200);
  });

  it('lets exactly num_uses of many concurrent requests through', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 8 }), async (uses, extra) => {
        const store = new TokenStore(barrier);
        const { token } = await store.create(await store.lookup(rootToken), { policies: ['a'], num_uses: uses }, 'p');
        const attempts = await Promise.allSettled(Array.from({ length: uses + extra }, async () => store.use(await store.lookup(token))));
        expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(uses);
        for (const a of attempts) if (a.status === 'rejected') expect(a.reason).toBeInstanceOf(PermissionDeniedError);
        await expect(store.lookup(token)).rejects.toThrow(PermissionDeniedError);
      }),
      { numRuns: 40 },
    );
  });
});
