import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, TokenUnavailableError } from '../src/pkcs11/errors.js';
import { Token, type TokenKey } from '../src/pkcs11/token.js';
import { HsmEmulator } from './support/hsm-emulator.js';
import { freshProcessToken, type TestToken } from './support/softhsm.js';

/** A value sealed by the token, with what it was sealed from. */
interface Sealed {
  iv: Buffer;
  aad: Buffer;
  plaintext: Buffer;
  sealed: Buffer;
}

describe('the session pool on the HSM emulator (a network HSM: every call a round trip)', () => {
  let t: TestToken;
  let emu: HsmEmulator;
  let token: Token | undefined;

  beforeAll(async () => {
    t = await freshProcessToken('keyward-pool');
    emu = (await HsmEmulator.create()).useInProcess();
  });
  afterEach(() => {
    token?.disconnect();
    token = undefined;
    emu.latencyUs = 0;
    emu.maxSessions = 0;
    emu.resetPeakSessions();
  });
  afterAll(() => emu.close());

  /** A token on the emulator with a working key, its pool's threads started. */
  async function connect(maxParallel?: number): Promise<{ token: Token; key: TokenKey }> {
    token = new Token({ ...t.config, lib: emu.lib, maxParallel });
    token.ensureSealKey(true);
    await token.started();
    return { token, key: token.generateKey() };
  }

  async function sealMany(tok: Token, key: TokenKey, n: number): Promise<Sealed[]> {
    return Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const iv = randomBytes(12);
        const aad = Buffer.from(`secret/${i}`);
        const plaintext = randomBytes(1 + (i % 300));
        const sealed = Buffer.from(await tok.encryptAsync(key, iv, aad, plaintext, Buffer.alloc(plaintext.length + 16)));
        return { iv, aad, plaintext, sealed };
      }),
    );
  }

  /** Opens every value again; each either comes back exactly or failed with a TokenUnavailableError (503). */
  async function openAll(tok: Token, key: TokenKey, values: Sealed[]): Promise<{ ok: number; unavailable: string[] }> {
    const results = await Promise.allSettled(values.map((v) => tok.decryptAsync(key, v.iv, v.aad, v.sealed, 'v')));
    const unavailable: string[] = [];
    let ok = 0;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        expect(r.value.equals(values[i]!.plaintext), `value ${i}`).toBe(true);
        ok++;
      } else {
        expect(r.reason).toBeInstanceOf(TokenUnavailableError);
        unavailable.push((r.reason as Error).message);
      }
    });
    return { ok, unavailable };
  }

  it('picks the pool by a measured round trip, and keeps the event loop turning while calls are in flight', async () => {
    emu.latencyUs = 1000;
    const { token: tok, key } = await connect();
    expect(tok.dispatch).toMatchObject({ mode: 'session-pool', maxParallel: 16 });
    expect(tok.dispatch!.roundTripUs).toBeGreaterThanOrEqual(1000);
    let turns = 0;
    const timer = setInterval(() => turns++, 1);
    const values = await sealMany(tok, key, 64);
    clearInterval(timer);
    // On the event loop the 128 calls would have run inside sealMany's first tick: no timer could fire.
    expect(turns).toBeGreaterThan(0);
    expect(await openAll(tok, key, values)).toEqual({ ok: 64, unavailable: [] });
    // One session per thread in use, plus the token's own; never more than the pool's size.
    expect(emu.peakSessions).toBeLessThanOrEqual(17);
  });

  it('stays on the event loop for an in-process module, and when max_parallel is 0', async () => {
    const { token: tok } = await connect();
    expect(tok.dispatch).toMatchObject({ mode: 'event-loop', maxParallel: 0 });
    expect(tok.dispatch!.roundTripUs).toBeLessThan(50);
    tok.disconnect();
    emu.latencyUs = 500;
    expect((await connect(0)).token.dispatch).toMatchObject({ mode: 'event-loop', maxParallel: 0 });
  });

  it('a GCM round trip on the pool costs the same two calls each way as inline', async () => {
    emu.latencyUs = 200;
    const { token: tok, key } = await connect(4);
    await sealMany(tok, key, 1);
    let before = emu.counts();
    const [v] = await sealMany(tok, key, 1);
    expect(emu.callsSince(before)).toEqual({ C_EncryptInit: 1, C_Encrypt: 1 });
    before = emu.counts();
    expect(await openAll(tok, key, [v!])).toEqual({ ok: 1, unavailable: [] });
    expect(emu.callsSince(before)).toEqual({ C_DecryptInit: 1, C_Decrypt: 1 });
  });

  it('carries values past the 64 KiB mailbox (each gets one of its size) and small ones after them', async () => {
    emu.latencyUs = 100;
    const { token: tok, key } = await connect(2);
    for (const size of [10, 70 * 1024, 1024 * 1024, 10, 64 * 1024, 33]) {
      const iv = randomBytes(12);
      const aad = Buffer.from(`secret/${size}`);
      const plaintext = randomBytes(size);
      const sealed = Buffer.from(await tok.encryptAsync(key, iv, aad, plaintext, Buffer.alloc(size + 16)));
      expect(sealed.length, `sealed ${size}`).toBe(size + 16);
      expect((await tok.decryptAsync(key, iv, aad, sealed, 'big')).equals(plaintext), `round trip of ${size} bytes`).toBe(true);
    }
  });

  it("never opens more sessions than the token allows: a cap of 4 under 50 callers", async () => {
    emu.latencyUs = 300;
    emu.maxSessions = 4;
    const { token: tok, key } = await connect(32);
    // The token's own session is one of the four.
    expect(tok.dispatch).toMatchObject({ mode: 'session-pool', maxParallel: 3, tokenSessionLimit: 4 });
    const values = await sealMany(tok, key, 50);
    expect(await openAll(tok, key, values)).toEqual({ ok: 50, unavailable: [] });
    expect(emu.peakSessions).toBeLessThanOrEqual(4);
  });

  it('waits on CKR_SESSION_COUNT instead of failing when the HSM has fewer sessions to give than at startup', async () => {
    emu.latencyUs = 300;
    const { token: tok, key } = await connect(8);
    const values = await sealMany(tok, key, 16);
    expect(emu.openSessions).toBe(9);
    // The connection drops and comes back with room for 3 sessions (other applications took the rest).
    emu.maxSessions = 3;
    emu.dropConnection();
    const before = emu.counts();
    const after = await openAll(tok, key, values);
    expect(after.ok + after.unavailable.length).toBe(16);
    expect(await openAll(tok, key, [...values, ...(await sealMany(tok, key, 24))])).toEqual({ ok: 40, unavailable: [] });
    expect(emu.openSessions).toBeLessThanOrEqual(3);
    // The pool asked for more sessions, was refused, and waited rather than failing a request.
    expect(emu.callsSince(before).C_OpenSession).toBeGreaterThan(3);
  });

  it('retries a call whose session was lost once, on a new session', async () => {
    emu.latencyUs = 100;
    const { token: tok, key } = await connect(4);
    const values = await sealMany(tok, key, 4);
    emu.failNext('C_Decrypt', 2, 'CKR_SESSION_HANDLE_INVALID');
    const before = emu.counts();
    expect(await openAll(tok, key, values)).toEqual({ ok: 4, unavailable: [] });
    expect(emu.faultsFired).toBeGreaterThan(0);
    // The broken session is closed; the retry runs on another (a new one is opened when one is needed).
    expect(emu.callsSince(before)).toMatchObject({ C_Decrypt: 5, C_CloseSession: 1 });
  });

  it('re-unwraps the keys when their handles die with the token session, and retries', async () => {
    emu.latencyUs = 100;
    const { token: tok, key } = await connect(4);
    const values = await sealMany(tok, key, 4);
    emu.failNext('C_DecryptInit', 1, 'CKR_OBJECT_HANDLE_INVALID');
    const before = emu.counts();
    expect(await openAll(tok, key, values)).toEqual({ ok: 4, unavailable: [] });
    expect(emu.callsSince(before)).toMatchObject({ C_UnwrapKey: 1, C_Login: 1 });
  });

  it('never retries a tag failure: a flipped bit is an IntegrityError after one C_Decrypt', async () => {
    emu.latencyUs = 100;
    const { token: tok, key } = await connect(4);
    const [v] = await sealMany(tok, key, 1);
    v!.sealed[0]! ^= 1;
    const before = emu.counts();
    await expect(tok.decryptAsync(key, v!.iv, v!.aad, v!.sealed, 'value at "x"')).rejects.toThrow(IntegrityError);
    expect(emu.callsSince(before)).toMatchObject({ C_DecryptInit: 1, C_Decrypt: 1 });
  });

  it('survives a dropped connection with 32 calls in flight and 16 more waiting in second lanes: each opens its value or answers 503, then all work', async () => {
    emu.latencyUs = 1000;
    const { token: tok, key } = await connect(32);
    const values = await sealMany(tok, key, 48);
    const pending = openAll(tok, key, values);
    await new Promise((r) => setTimeout(r, 1));
    emu.dropConnection();
    const during = await pending;
    expect(during.ok + during.unavailable.length).toBe(48);
    for (const message of during.unavailable) expect(message).toMatch(/^HSM token unavailable: /);
    // The module was re-initialized without anyone unsealing anything: every value opens again.
    expect(await openAll(tok, key, values)).toEqual({ ok: 48, unavailable: [] });
    expect(emu.counts().C_Finalize).toBeGreaterThan(0);
  });
});
