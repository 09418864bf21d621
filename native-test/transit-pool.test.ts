import { constants, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyType } from '../src/pkcs11/key-types.js';
import { Token } from '../src/pkcs11/token.js';
import { HsmEmulator } from './support/hsm-emulator.js';
import { freshProcessToken, type TestToken } from './support/softhsm.js';

const MESSAGE = Buffer.from('signed on a pool thread');

/**
 * On a module with network latency (the emulator), signatures and HMACs go to the session pool's
 * threads as AES-GCM does: the event loop hands the call over and goes on, and the thread's
 * C_SignInit and C_Sign are counted by the emulator only once the promise settles.
 */
describe('signing and HMAC on the session pool (HSM emulator, 20 ms per call, max_parallel 4)', () => {
  let t: TestToken;
  let emu: HsmEmulator;
  let token: Token;

  beforeAll(async () => {
    t = await freshProcessToken('keyward-transit-pool');
    // A long round trip: a C_Sign can reach the module only 40 ms after its job was handed over, far
    // longer than this thread takes to hand over eight, even on a loaded machine.
    emu = (await HsmEmulator.create({ latencyUs: 20_000 })).useInProcess();
    token = new Token({ ...t.config, lib: emu.lib, maxParallel: 4 });
    token.ensureSealKey(true);
    await token.started();
    expect(token.dispatch?.mode).toBe('session-pool');
  });
  afterAll(async () => {
    token?.disconnect();
    emu?.close();
  });

  for (const type of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] as const satisfies readonly KeyType[]) {
    it(`signs with ${type} on a thread: nothing runs on the caller's, and node:crypto verifies each of 8 concurrent signatures`, async () => {
      const { key, publicKey } = token.generateKeyPair(type);
      await token.signAsync(key, MESSAGE, { hash: 'sha2-256', prehashed: false }); // the handle is made for the threads first
      const before = emu.counts();
      const pending = Array.from({ length: 8 }, () => token.signAsync(key, MESSAGE, { hash: 'sha2-256', prehashed: false, rsaScheme: 'pss', pssSaltLength: 32 }));
      // Handed over, not made: no C_Sign has reached the module yet on this thread's account.
      expect(emu.callsSince(before).C_Sign ?? 0).toBe(0);
      const signatures = await Promise.all(pending);
      expect(emu.callsSince(before)).toMatchObject({ C_SignInit: 8, C_Sign: 8 });
      const options = type === 'rsa-2048' ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : { key: publicKey, dsaEncoding: 'der' as const };
      for (const signature of signatures) expect(verify('sha256', MESSAGE, options, signature)).toBe(true);
      token.releaseKey(key);
    });
  }

  it('computes HMACs on a thread, the same as inline', async () => {
    const key = token.generateHmacKey(64);
    const inline = token.hmac(key, 'sha2-512', MESSAGE);
    const before = emu.counts();
    const pending = token.hmacAsync(key, 'sha2-512', MESSAGE);
    expect(emu.callsSince(before).C_Sign ?? 0).toBe(0);
    expect((await pending).equals(inline)).toBe(true);
    expect(emu.callsSince(before)).toMatchObject({ C_SignInit: 1, C_Sign: 1 });
  });

  it('refuses what a key cannot do before anything is sent', async () => {
    const aes = token.generateKey();
    await expect(token.hmacAsync(aes, 'sha2-256', MESSAGE)).rejects.toThrow(/does not compute HMACs/);
    await expect(token.signAsync(aes, MESSAGE, { hash: 'sha2-256', prehashed: false })).rejects.toThrow(/does not sign/);
  });
});
