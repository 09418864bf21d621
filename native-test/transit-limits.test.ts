import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { BarrierView } from '../src/barrier/view.js';
import { TransitEngine } from '../src/engines/transit/engine.js';
import type { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { processTokenWithSealKey } from './support/softhsm.js';

/**
 * The encryption limit per AES version (NIST SP 800-38D), made small: a version never encrypts
 * more than the limit, counting across restarts, and the key rotates by itself when it is reached.
 */
describe('transit encryption counts per key version (SoftHSM2)', () => {
  let token: Token;
  let view: BarrierView;
  const LIMIT = 5;

  beforeAll(async () => {
    ({ token } = await processTokenWithSealKey());
    const barrier = new TokenBarrier(new InmemBackend(), token);
    const root = token.importKey(randomBytes(32));
    await barrier.initialize(root, []);
    await barrier.unseal(token.loadKey(root.blob));
    view = new BarrierView(barrier, 'logical/transit-limits/');
  });

  /** A node's engine on the shared storage: a new one is a restarted node. */
  const engine = () => new TransitEngine(view, token, Date.now, { maxEncryptions: LIMIT });
  const encrypt = async (e: TransitEngine, name = 'counted') => {
    const r = await e.handle({ operation: 'update', path: `encrypt/${name}`, data: { plaintext: 'aGVsbG8=' }, query: {} });
    return r!.data!.key_version as number;
  };
  const stored = async (e: TransitEngine, name: string) => (await e.handle({ operation: 'read', path: `keys/${name}`, data: {}, query: {} }))!.data!;

  it('encrypts at most the limit under one version, then rotates and goes on under the next', async () => {
    const e = engine();
    const versions: number[] = [];
    for (let i = 0; i < 3 * LIMIT; i++) versions.push(await encrypt(e));
    expect(versions).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3]);
    expect((await stored(e, 'counted')).latest_version).toBe(3);
  });

  it('holds the limit for a batch whose items encrypt concurrently, rotating as often as it takes', async () => {
    const e = engine();
    const items = Array.from({ length: 4 * LIMIT + 2 }, (_, i) => ({ plaintext: Buffer.from(`item ${i}`).toString('base64') }));
    const r = await e.handle({ operation: 'update', path: 'encrypt/batched', data: { batch_input: items }, query: {} });
    const versions = (r!.data!.batch_results as Array<{ key_version: number; ciphertext: string }>).map((x) => x.key_version);
    const perVersion = new Map<number, number>();
    for (const v of versions) perVersion.set(v, (perVersion.get(v) ?? 0) + 1);
    expect([...perVersion.values()].every((n) => n <= LIMIT)).toBe(true);
    expect(versions).toHaveLength(items.length);
    expect((await stored(e, 'batched')).latest_version).toBe(Math.max(...versions));
    const back = await e.handle({ operation: 'update', path: 'decrypt/batched', data: { batch_input: (r!.data!.batch_results as Array<{ ciphertext: string }>).map((x) => ({ ciphertext: x.ciphertext })) }, query: {} });
    expect((back!.data!.batch_results as Array<{ plaintext: string }>).map((x) => Buffer.from(x.plaintext, 'base64').toString())).toEqual(items.map((_, i) => `item ${i}`));
  });

  it('counts what a node reserved before a crash as used: a restarted node never reuses it', async () => {
    const first = engine();
    expect(await encrypt(first, 'restarted')).toBe(1);
    expect(await encrypt(first, 'restarted')).toBe(1);
    // The first node reserved the whole of version 1's limit before its first encryption; the
    // second cannot know how much of it was used, so it takes none of it.
    const second = engine();
    expect(await encrypt(second, 'restarted')).toBe(2);
    expect((await stored(second, 'restarted')).latest_version).toBe(2);
  });

  it('refuses an older version that reached its limit rather than rotating under the caller', async () => {
    const e = engine();
    for (let i = 0; i < LIMIT; i++) await encrypt(e, 'pinned');
    expect(await encrypt(e, 'pinned')).toBe(2);
    await expect(e.handle({ operation: 'update', path: 'encrypt/pinned', data: { plaintext: 'aGVsbG8=', key_version: 1 }, query: {} })).rejects.toThrow(
      /version 1 .* has reached its encryption limit/,
    );
  });
});
