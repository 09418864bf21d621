import { spawnSync } from 'node:child_process';
import pkcs11js from 'pkcs11js';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { asTokenError, IntegrityError, TokenError, TokenUnavailableError } from '../src/pkcs11/errors.js';
import { FaultInjector } from '../src/pkcs11/fault-injection.js';
import { slotId } from '../src/pkcs11/module.js';
import { Token } from '../src/pkcs11/token.js';
import { processTokenWithSealKey, sessionKeyCount, sideChannel, type TestToken } from './support/softhsm.js';

/** The error `fn` throws (fails the test if it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('Token recovery ladder and connection errors, against SoftHSM2', () => {
  let t: TestToken;
  let token: Token;

  beforeAll(async () => {
    ({ t, token } = await processTokenWithSealKey());
  });

  afterEach(() => {
    token.injectFaultsForTesting(undefined);
    vi.useRealTimers();
  });

  /** The calls `op` makes when the session is closed behind the token's back. */
  function afterLostSession(op: () => unknown): string[] {
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    const calls = token.injectFaultsForTesting({ countOnly: true })!;
    op();
    token.injectFaultsForTesting(undefined);
    return calls.functions;
  }

  it('answers a session failure with a new session and one retry, without re-initializing the module', () => {
    token.random(1);
    const injector = token.injectFaultsForTesting({ at: 1, ckr: 'CKR_SESSION_HANDLE_INVALID' })!;
    expect(token.random(8)).toHaveLength(8);
    const calls = injector.functions;
    expect(calls[0]).toBe('C_GenerateRandom');
    expect(calls.at(-1)).toBe('C_GenerateRandom');
    expect(calls).toContain('C_OpenSession');
    expect(calls).toContain('C_Login');
    expect(calls).not.toContain('C_Finalize');
    expect(calls).not.toContain('C_Initialize');
    expect(calls.filter((c) => c === 'C_GenerateRandom')).toHaveLength(2);
  });

  it('answers a library failure by finalizing and re-initializing the module before the new session', () => {
    token.random(1);
    const injector = token.injectFaultsForTesting({ at: 1, ckr: 'CKR_DEVICE_ERROR' })!;
    expect(token.random(8)).toHaveLength(8);
    const calls = injector.functions;
    expect(calls.slice(0, 3)).toEqual(['C_GenerateRandom', 'C_Finalize', 'C_Initialize']);
    expect(calls.indexOf('C_OpenSession')).toBeGreaterThan(2);
    expect(calls.at(-1)).toBe('C_GenerateRandom');
  });

  it('re-initializes the module when a new session cannot be opened after a session failure', () => {
    token.random(1);
    const reference = afterLostSession(() => token.random(1));
    const openAt = reference.indexOf('C_OpenSession') + 1;
    expect(openAt).toBeGreaterThan(1);
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    const injector = token.injectFaultsForTesting({ at: openAt, ckr: 'CKR_SESSION_COUNT' })!;
    expect(token.random(8)).toHaveLength(8);
    expect(injector.firedAt).toBe('C_OpenSession');
    const after = injector.functions.slice(openAt);
    expect(after.slice(0, 2)).toEqual(['C_Finalize', 'C_Initialize']);
    expect(after).toContain('C_OpenSession');
  });

  it('re-initializes a module finalized while it had no session open', () => {
    token.disconnect();
    sideChannel(t).p11.C_Finalize();
    expect(token.random(4)).toHaveLength(4);
    expect(token.connected).toBe(true);
  });

  it('gives a fatal failure back at once, without recovery', () => {
    token.random(1);
    const injector = token.injectFaultsForTesting({ at: 1, ckr: 'CKR_KEY_FUNCTION_NOT_PERMITTED' })!;
    const err = thrown(() => token.random(8));
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).ckr).toBe('CKR_KEY_FUNCTION_NOT_PERMITTED');
    expect(injector.functions).toEqual(['C_GenerateRandom']);
    expect(token.connected).toBe(true);
  });

  it('reports the token unavailable when the retry fails too, and drops the session for the next call to rebuild', () => {
    const reference = afterLostSession(() => token.random(1));
    expect(reference.at(-1)).toBe('C_GenerateRandom');
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    const injector = token.injectFaultsForTesting({ at: reference.length, ckr: 'CKR_DEVICE_ERROR' })!;
    const err = thrown(() => token.random(1));
    expect(injector.firedAt).toBe('C_GenerateRandom');
    expect(err).toBeInstanceOf(TokenUnavailableError);
    expect(err.message).toBe('HSM token unavailable: PKCS#11 C_GenerateRandom failed: CKR_DEVICE_ERROR (after recovery)');
    expect(token.connected).toBe(false);
    token.injectFaultsForTesting(undefined);
    expect(token.random(4)).toHaveLength(4);
    expect(token.connected).toBe(true);
  });

  it('gives a fatal failure of the retry back as it is, keeping the new session', () => {
    const reference = afterLostSession(() => token.random(1));
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    token.injectFaultsForTesting({ at: reference.length, ckr: 'CKR_KEY_FUNCTION_NOT_PERMITTED' });
    const err = thrown(() => token.random(1));
    expect(err).toBeInstanceOf(TokenError);
    expect(err.message).toBe('PKCS#11 C_GenerateRandom failed: CKR_KEY_FUNCTION_NOT_PERMITTED');
    expect(token.connected).toBe(true);
  });

  it('still calls a bad tag an integrity error when it is met on the retry', () => {
    const key = token.generateKey();
    const iv = Buffer.alloc(12);
    const sealed = token.encrypt(key, iv, Buffer.from('a'), Buffer.from('value'), Buffer.alloc(21));
    sealed[0]! ^= 1;
    const calls = afterLostSession(() => expect(() => token.decrypt(key, iv, Buffer.from('a'), sealed, 'flipped')).toThrow(IntegrityError));
    // The lost session was noticed, a new one opened, and the key unwrapped again for the retry.
    expect(calls).toContain('C_OpenSession');
    expect(calls).toContain('C_UnwrapKey');
  });

  it('reads a module that reports a bad wrapped key, or a failed unwrap on a live session, as a blob from another seal key', () => {
    const blob = token.generateKey().blob;
    for (const ckr of ['CKR_WRAPPED_KEY_INVALID', 'CKR_GENERAL_ERROR']) {
      token.injectFaultsForTesting({ at: 1, ckr });
      expect(() => token.loadKey(blob), ckr).toThrow(new IntegrityError('wrapped key does not unwrap with this seal key'));
    }
    // Any other unwrap failure climbs the ladder, and the key loads on the retry.
    const faults = token.injectFaultsForTesting({ at: 1, ckr: 'CKR_DEVICE_ERROR' })!;
    expect(token.loadKey(blob).handle).toBeDefined();
    expect(faults.firedAt).toBe('C_UnwrapKey');
    token.injectFaultsForTesting(undefined);
  });

  it('finds its token by slot id when one is configured', () => {
    // The slot id as SoftHSM2 itself reports it, so a misread handle cannot agree with itself.
    const shown = spawnSync('softhsm2-util', ['--show-slots'], { env: { ...process.env, SOFTHSM2_CONF: t.confPath }, encoding: 'utf8' }).stdout;
    const id = BigInt(/Slot (\d+)\s+Slot info:[\s\S]*?Token info:[\s\S]*?Label:\s+keyward-test/.exec(shown)![1]!);
    expect(slotId(sideChannel(t).slot)).toBe(id);
    const bySlot = new Token({ lib: t.config.lib, pin: t.config.pin, keyLabel: t.config.keyLabel, slot: Number(id) });
    expect(bySlot.hasSealKey()).toBe(true);
    const wrongSlot = new Token({ lib: t.config.lib, pin: t.config.pin, keyLabel: t.config.keyLabel, slot: Number(id) + 1000 });
    expect(() => wrongSlot.random(1)).toThrow(`HSM token unavailable: PKCS#11 C_GetSlotList (no token in slot ${Number(id) + 1000}) failed: CKR_SLOT_ID_INVALID`);
  });

  it('says which library it could not load', () => {
    const missing = new Token({ ...t.config, lib: '/nonexistent/libpkcs11.so' });
    expect(() => missing.random(1)).toThrow(/^HSM token unavailable: cannot load PKCS#11 library \/nonexistent\/libpkcs11\.so: /);
  });

  it('tells whether the seal key exists, and does not create one when generate_key is false', () => {
    const absent = new Token({ ...t.config, keyLabel: 'absent-key' });
    expect(absent.hasSealKey()).toBe(false);
    expect(() => absent.ensureSealKey(false)).toThrow('PKCS#11 find seal key "absent-key" (not in token and generate_key is false) failed: CKR_KEY_HANDLE_INVALID');
    expect(absent.hasSealKey()).toBe(false);
    expect(() => absent.sealKeyAttributes()).toThrow('PKCS#11 find seal key "absent-key" (not in token) failed: CKR_KEY_HANDLE_INVALID');
    absent.ensureSealKey(true);
    absent.ensureSealKey(true);
    expect(absent.hasSealKey()).toBe(true);
    expect(absent.sealKeyAttributes()).toEqual({ sensitive: true, extractable: false, neverExtractable: true });
  });

  it('refuses to guess between two keys with its label', () => {
    const { p11, slot } = sideChannel(t);
    const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      for (let i = 0; i < 2; i++) {
        p11.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_LABEL, value: 'twice' },
          { type: pkcs11js.CKA_TOKEN, value: false },
        ]);
      }
      expect(() => new Token({ ...t.config, keyLabel: 'twice' }).hasSealKey()).toThrow('the token holds more than one key labelled "twice"; refusing to guess');
    } finally {
      p11.C_CloseSession(s);
    }
  });

  it('drops its working keys and session on disconnect and unwraps them again on the next use', () => {
    const key = token.generateKey();
    token.disconnect();
    expect(token.connected).toBe(false);
    expect(key.handle).toBeUndefined();
    const sealed = token.encrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.from('v'), Buffer.alloc(17));
    expect(token.connected).toBe(true);
    expect(token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'v').toString()).toBe('v');
  });

  it('backs off between failed connection attempts, doubling the wait up to 30 s', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const missing = new Token({ ...t.config, tokenLabel: 'no-such-token' });
    expect(thrown(() => missing.random(1)).message).toBe('HSM token unavailable: PKCS#11 C_GetSlotList (no token labelled "no-such-token") failed: CKR_TOKEN_NOT_RECOGNIZED');
    for (const waitMs of [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]) {
      vi.setSystemTime(Date.now() + waitMs - 1);
      expect(thrown(() => missing.random(1)).message).toBe('HSM token unavailable: reconnecting (backing off after a failed attempt)');
      vi.setSystemTime(Date.now() + 1);
      expect(thrown(() => missing.random(1)).message, `after ${waitMs} ms`).toMatch(/no token labelled "no-such-token"/);
    }
  });

  it('starts the backoff over once a connection succeeds', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const failConnect = () => {
      token.disconnect();
      token.injectFaultsForTesting({ at: 1, ckr: 'CKR_TOKEN_NOT_PRESENT' });
      expect(() => token.random(1)).toThrow('HSM token unavailable: PKCS#11 C_GetSlotList failed: CKR_TOKEN_NOT_PRESENT');
      token.injectFaultsForTesting(undefined);
    };
    failConnect();
    vi.setSystemTime(Date.now() + 250);
    failConnect(); // now waiting 500 ms
    vi.setSystemTime(Date.now() + 500);
    expect(token.random(1)).toHaveLength(1);
    failConnect();
    vi.setSystemTime(Date.now() + 249);
    expect(() => token.random(1)).toThrow(/backing off/);
    vi.setSystemTime(Date.now() + 1);
    expect(token.random(1)).toHaveLength(1);
  });


  it('closes the session it gives up on, so the working keys made in it are gone too', () => {
    token.random(1);
    const before = sessionKeyCount(t);
    const key = token.generateKey();
    expect(sessionKeyCount(t)).toBe(before + 1);
    token.injectFaultsForTesting({ at: 1, ckr: 'CKR_SESSION_HANDLE_INVALID' });
    token.random(1);
    token.injectFaultsForTesting(undefined);
    expect(sessionKeyCount(t)).toBe(before);
    // The key is unwrapped again from its blob on its next use.
    expect(token.sameKey(key, token.loadKey(key.blob))).toBe(true);
  });

  it('logs the application out on disconnect, even while other sessions stay open', () => {
    token.random(1);
    const { p11, slot } = sideChannel(t);
    const other = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      const sealKeysSeen = () => {
        p11.C_FindObjectsInit(other, [{ type: pkcs11js.CKA_LABEL, value: t.config.keyLabel }]);
        const n = p11.C_FindObjects(other, 2).length;
        p11.C_FindObjectsFinal(other);
        return n;
      };
      expect(sealKeysSeen()).toBe(1);
      token.disconnect();
      // The seal key is a private object: only a logged-in application sees it.
      expect(sealKeysSeen()).toBe(0);
    } finally {
      p11.C_CloseSession(other);
    }
    expect(token.random(2)).toHaveLength(2);
  });

  it('logs each recovery with the CKR and the rung, a refused login as an error, and a generated seal key', () => {
    const logs: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const logged = new Token({ ...t.config, keyLabel: 'logged-seal' }, log);
    logged.ensureSealKey(true);
    expect(logs.at(-1)).toMatchObject({ level: 30, msg: 'generated seal key in token', keyLabel: 'logged-seal' });
    logged.injectFaultsForTesting({ at: 1, ckr: 'CKR_OBJECT_HANDLE_INVALID' });
    logged.random(1);
    expect(logs.at(-1)).toMatchObject({ level: 40, msg: 'PKCS#11 call failed; recovering the token session', ckr: 'CKR_OBJECT_HANDLE_INVALID', fn: 'C_GenerateRandom', rung: 'session' });
    logged.injectFaultsForTesting(undefined);
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    const reference = logged.injectFaultsForTesting({ countOnly: true })!;
    logged.random(1);
    p11.C_CloseAllSessions(slot);
    logged.injectFaultsForTesting({ at: reference.functions.indexOf('C_OpenSession') + 1, ckr: 'CKR_SESSION_COUNT' });
    logged.random(1);
    logged.injectFaultsForTesting(undefined);
    expect(logs.some((l) => l.level === 40 && l.msg === 'new session failed; re-initializing the PKCS#11 module' && l.err === 'PKCS#11 C_OpenSession failed: CKR_SESSION_COUNT')).toBe(true);

    token.disconnect();
    logged.disconnect();
    const wrongPin = new Token({ ...t.config, pin: 'not-the-pin' }, log);
    expect(() => wrongPin.random(1)).toThrow(/CKR_PIN_INCORRECT/);
    expect(logs.at(-1)).toMatchObject({ level: 50, msg: 'PKCS#11 C_Login failed with CKR_PIN_INCORRECT; not retrying until restarted', ckr: 'CKR_PIN_INCORRECT', fn: 'C_Login' });
  });

  it('names the PKCS#11 function that failed, not the step it failed in, for every operation', () => {
    const key = token.generateKey();
    const sealed = token.encrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.from('v'), Buffer.alloc(17));
    const cases: Array<[string, number, () => unknown]> = [
      ['C_FindObjectsInit', 1, () => token.hasSealKey()],
      ['C_FindObjects', 2, () => token.hasSealKey()],
      ['C_GenerateKey', 1, () => token.generateKey()],
      ['C_WrapKey', 2, () => token.generateKey()],
      ['C_FindObjectsInit', 1, () => token.ensureSealKey(true)],
      ['C_EncryptInit', 1, () => token.encrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.from('v'), Buffer.alloc(17))],
      ['C_DecryptInit', 1, () => token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'v')],
      ['C_Decrypt', 2, () => token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'v')],
      ['C_GetAttributeValue', 1, () => token.sealKeyAttributes()],
      ['C_UnwrapKey', 1, () => token.loadKey(key.blob)],
    ];
    for (const [fn, at, op] of cases) {
      token.random(1);
      token.injectFaultsForTesting({ at, ckr: 'CKR_FUNCTION_NOT_SUPPORTED' });
      const err = thrown(op);
      token.injectFaultsForTesting(undefined);
      expect(err, fn).toBeInstanceOf(TokenError);
      expect(err.message, fn).toBe(`PKCS#11 ${fn} failed: CKR_FUNCTION_NOT_SUPPORTED`);
    }
  });

  it('names C_OpenSession and C_Login when a connection fails there', () => {
    const reference = new Token(t.config);
    const calls = reference.injectFaultsForTesting({ countOnly: true })!;
    reference.random(1);
    for (const fn of ['C_OpenSession', 'C_Login']) {
      const fresh = new Token(t.config);
      fresh.injectFaultsForTesting({ at: calls.functions.indexOf(fn) + 1, ckr: 'CKR_FUNCTION_NOT_SUPPORTED' });
      expect(() => fresh.random(1), fn).toThrow(`HSM token unavailable: PKCS#11 ${fn} failed: CKR_FUNCTION_NOT_SUPPORTED; fix the configuration and restart`);
    }
  });

  it('retries a decryption that failed for another reason than the tag, and it succeeds', () => {
    const key = token.generateKey();
    const sealed = token.encrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.from('v'), Buffer.alloc(17));
    token.injectFaultsForTesting({ at: 2, ckr: 'CKR_DEVICE_ERROR' });
    expect(token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'v').toString()).toBe('v');
  });

  it('calls a bad tag an integrity error without recovering, even when the value is named like a CKR', () => {
    const key = token.generateKey();
    const sealed = token.encrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.from('v'), Buffer.alloc(17));
    sealed[0]! ^= 1;
    const calls = token.injectFaultsForTesting({ countOnly: true })!;
    expect(() => token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'value at "secret/CKR_GENERAL_ERROR"')).toThrow(IntegrityError);
    expect(calls.functions).not.toContain('C_OpenSession');
    token.injectFaultsForTesting(undefined);
    // Met on the retry after a lost session, it is still an integrity error.
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    expect(() => token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'value at "secret/CKR_GENERAL_ERROR"')).toThrow(IntegrityError);
  });

  it('recovers from a failed unwrap on a session that is gone instead of calling the blob foreign', () => {
    const key = token.generateKey();
    const sealed = token.encrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.from('v'), Buffer.alloc(17));
    token.releaseKey(key);
    const { p11, slot } = sideChannel(t);
    p11.C_CloseAllSessions(slot);
    token.injectFaultsForTesting({ at: 1, ckr: 'CKR_GENERAL_ERROR' });
    expect(token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), sealed, 'v').toString()).toBe('v');
  });

  it('reports a module that cannot be initialized again, and recovers after the backoff', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    token.random(1);
    sideChannel(t).p11.C_Finalize();
    // Call 1 fails (module gone), 2 is C_Finalize, 3 the C_Initialize that fails.
    const injector = token.injectFaultsForTesting({ at: 3, ckr: 'CKR_DEVICE_ERROR' })!;
    expect(() => token.random(1)).toThrow('HSM token unavailable: PKCS#11 C_Initialize failed: CKR_DEVICE_ERROR');
    expect(injector.firedAt).toBe('C_Initialize');
    token.injectFaultsForTesting(undefined);
    vi.setSystemTime(Date.now() + 250);
    expect(token.random(4)).toHaveLength(4);
  });

  it('never leaves the key made for wrapping in the token, even when destroying it fails', () => {
    const tokenObjects = (): number => {
      const { p11, slot } = sideChannel(t);
      const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
      try {
        p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_TOKEN, value: true }]);
        const n = p11.C_FindObjects(s, 1000).length;
        p11.C_FindObjectsFinal(s);
        return n;
      } finally {
        p11.C_CloseSession(s);
      }
    };
    token.releaseKey(token.generateKey());
    const before = tokenObjects();
    const reference = token.injectFaultsForTesting({ countOnly: true })!;
    token.releaseKey(token.generateKey());
    // Break the C_DestroyObject of the wrapped key: the session is dropped and the call retried.
    const injector = token.injectFaultsForTesting({ at: reference.functions.indexOf('C_DestroyObject') + 1, ckr: 'CKR_SESSION_HANDLE_INVALID' })!;
    const key = token.generateKey();
    expect(injector.firedAt).toBe('C_DestroyObject');
    expect(tokenObjects()).toBe(before);
    expect(key.blob).toHaveLength(42);
  });

  describe('fault injection (the test machinery the HSM fault suite relies on)', () => {
    it('counts and names every C_ call and leaves everything else of the module as it is', () => {
      const { p11, slot } = sideChannel(t);
      const injector = new FaultInjector({ countOnly: true });
      const wrapped = injector.wrap(p11);
      expect(wrapped.C_GetSlotList(true).length).toBeGreaterThan(0);
      wrapped.C_GetTokenInfo(slot);
      expect(wrapped.load).toBe(p11.load);
      expect(injector.functions).toEqual(['C_GetSlotList', 'C_GetTokenInfo']);
      expect(injector.calls).toBe(2);
      expect(injector.firedAt).toBeUndefined();
    });

    it('breaks exactly the planned call with the CKR and code a module would report', () => {
      const { p11, slot } = sideChannel(t);
      const codes = { CKR_GENERAL_ERROR: 0x05, CKR_DEVICE_ERROR: 0x30, CKR_OBJECT_HANDLE_INVALID: 0x82, CKR_SESSION_HANDLE_INVALID: 0xb3, CKR_CRYPTOKI_NOT_INITIALIZED: 0x190 };
      for (const [ckr, code] of Object.entries(codes)) {
        const injector = new FaultInjector({ at: 2, ckr });
        const wrapped = injector.wrap(p11);
        wrapped.C_GetTokenInfo(slot);
        const te = asTokenError(thrown(() => wrapped.C_GetTokenInfo(slot)), 'C_GetTokenInfo');
        expect([te.ckr, te.code], ckr).toEqual([ckr, code]);
        expect(injector.firedAt).toBe('C_GetTokenInfo');
        wrapped.C_GetSlotList(true);
        expect(injector.calls).toBe(3);
      }
      // A CKR without a known code is reported as a general error's code, under its own name.
      const other = new FaultInjector({ at: 1, ckr: 'CKR_TOKEN_NOT_PRESENT' }).wrap(p11);
      const te = asTokenError(thrown(() => other.C_GetSlotList(true)), 'C_GetSlotList');
      expect([te.ckr, te.code]).toEqual(['CKR_TOKEN_NOT_PRESENT', 0x05]);
    });

    it('can finalize the module just before the planned call, which then meets a module that is gone', () => {
      token.random(1);
      const injector = token.injectFaultsForTesting({ at: 1, finalize: true })!;
      expect(token.random(4)).toHaveLength(4);
      expect(injector.firedAt).toBe('C_GenerateRandom');
      // The call itself failed (not initialized), so the token climbed to the library rung.
      expect(injector.functions.slice(0, 3)).toEqual(['C_GenerateRandom', 'C_Finalize', 'C_Initialize']);
    });
  });
});
