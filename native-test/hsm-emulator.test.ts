import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PKCS11_LIB, findSlot } from '../src/pkcs11/module.js';
import { Token } from '../src/pkcs11/token.js';
import { HsmEmulator } from './support/hsm-emulator.js';
import { freshProcessToken, type TestToken } from './support/softhsm.js';

const KEY = randomBytes(32);
const KEY_LABEL = 'emulator-test-key';
const AAD = Buffer.from('keyward/emulator');
const PKCS11JS = createRequire(import.meta.url).resolve('pkcs11js');

function gcm(iv: Buffer): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad: AAD, tagBits: 128 } as pkcs11js.GcmParams,
  };
}

/** The same encryption in node:crypto, to show the emulator forwards to a real AES-GCM. */
function expectedSeal(iv: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', KEY, iv).setAAD(AAD);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** The CKR code a call fails with, or undefined when it succeeds. */
function ckrOf(call: () => unknown): number | undefined {
  try {
    call();
    return undefined;
  } catch (err) {
    if (err instanceof pkcs11js.Pkcs11Error) return err.code;
    throw err;
  }
}

/** A worker with its own session, encrypting `rounds` times once told to go; reports its ciphertexts. */
const WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const pkcs11js = require(w.pkcs11js);
const p11 = new pkcs11js.PKCS11();
p11.load(w.lib);
try { p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }); } catch (err) { if (err.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err; }
const session = p11.C_OpenSession(Buffer.from(w.slot), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
parentPort.once('message', () => {
  const sealed = [];
  for (let i = 0; i < w.rounds; i++) {
    const iv = Buffer.alloc(12, w.id * 16 + i);
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: 96, aad: Buffer.from(w.aad), tagBits: 128 } }, Buffer.from(w.key));
    sealed.push(Buffer.from(p11.C_Encrypt(session, Buffer.from(w.plaintext), Buffer.alloc(w.plaintext.length + 16))));
  }
  p11.C_CloseSession(session);
  parentPort.postMessage(sealed);
});
parentPort.postMessage('ready');
`;

describe('HSM emulator: a PKCS#11 module forwarding to SoftHSM2 like a network HSM', () => {
  let t: TestToken;
  let emu: HsmEmulator;
  let p11: pkcs11js.PKCS11;
  let slot: Buffer;
  let session: Buffer;
  let key: Buffer;

  /** A logged-in session through the emulator (login is per application: a second one says so). */
  function openSession(): Buffer {
    const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    const ckr = ckrOf(() => p11.C_Login(s, pkcs11js.CKU_USER, t.config.pin));
    if (ckr !== undefined && ckr !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw new Error(`C_Login: ${ckr}`);
    return s;
  }

  /** Connects through the emulator and brings KEY in as a session object (it dies with `session`). */
  function connect(): void {
    slot = findSlot(p11, t.config);
    session = openSession();
    key = p11.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_LABEL, value: KEY_LABEL },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_VALUE, value: KEY },
    ]);
  }

  function seal(iv: Buffer, plaintext: Buffer, s = session): Buffer {
    p11.C_EncryptInit(s, gcm(iv), key);
    return Buffer.from(p11.C_Encrypt(s, plaintext, Buffer.alloc(plaintext.length + 16)));
  }

  function open(iv: Buffer, sealed: Buffer): Buffer {
    p11.C_DecryptInit(session, gcm(iv), key);
    return Buffer.from(p11.C_Decrypt(session, sealed, Buffer.alloc(sealed.length)));
  }

  beforeAll(async () => {
    t = await freshProcessToken('keyward-emulator');
    emu = (await HsmEmulator.create()).useInProcess();
    p11 = new pkcs11js.PKCS11();
    p11.load(emu.lib);
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    connect();
  });

  afterAll(() => emu?.close());

  it('does AES-GCM through SoftHSM2: the same bytes as node:crypto, and back', () => {
    const iv = randomBytes(12);
    const plaintext = Buffer.from('a value the barrier would store');
    const sealed = seal(iv, plaintext);
    expect(sealed.equals(expectedSeal(iv, plaintext))).toBe(true);
    expect(open(iv, sealed).equals(plaintext)).toBe(true);
  });

  it('counts every call per function, exactly', () => {
    const before = emu.counts();
    p11.C_GetSessionInfo(session);
    const iv = randomBytes(12);
    const sealed = [1, 2, 3].map(() => seal(iv, Buffer.from('x')));
    open(iv, sealed[0]!);
    open(iv, sealed[1]!);
    expect(emu.callsSince(before)).toEqual({ C_GetSessionInfo: 1, C_EncryptInit: 3, C_Encrypt: 3, C_DecryptInit: 2, C_Decrypt: 2 });
  });

  it('waits the latency before every call, asleep rather than spinning', () => {
    const calls = 5;
    const latencyUs = 40_000;
    emu.latencyUs = latencyUs;
    try {
      const cpu = process.cpuUsage();
      const start = performance.now();
      for (let i = 0; i < calls; i++) p11.C_GenerateRandom(session, Buffer.alloc(16));
      const elapsedMs = performance.now() - start;
      const used = process.cpuUsage(cpu);
      const waitMs = (calls * latencyUs) / 1000;
      expect(elapsedMs).toBeGreaterThanOrEqual(waitMs);
      // A spinning wait burns CPU for as much of the wait as the machine gives it (a third, measured on
      // a busy 2-core machine); a sleep burns next to none.
      expect((used.user + used.system) / 1000).toBeLessThan(waitMs / 10);
    } finally {
      emu.latencyUs = 0;
    }
  });

  it('caps open sessions: the one past the cap gets CKR_SESSION_COUNT, and C_GetTokenInfo reports the cap', () => {
    const open = emu.openSessions;
    expect(open).toBe(1);
    const cap = open + 2;
    emu.maxSessions = cap;
    const extra = [openSession(), openSession()];
    try {
      expect(ckrOf(() => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION))).toBe(pkcs11js.CKR_SESSION_COUNT);
      const info = p11.C_GetTokenInfo(slot);
      expect(info).toMatchObject({ maxSessionCount: cap, maxRwSessionCount: cap, sessionCount: cap, rwSessionCount: cap });
      // A closed session frees its place.
      p11.C_CloseSession(extra.pop()!);
      expect(emu.openSessions).toBe(cap - 1);
      extra.push(openSession());
      expect(emu.peakSessions).toBe(cap);
    } finally {
      for (const s of extra) p11.C_CloseSession(s);
      emu.maxSessions = 0;
    }
    expect(emu.openSessions).toBe(open);
    // Without a cap the target's own limits show again (SoftHSM2: effectively infinite, 0).
    expect(p11.C_GetTokenInfo(slot)).toMatchObject({ maxSessionCount: 0, sessionCount: open });
  });

  it('fails the Nth call of a function once, with the CKR asked for, ending the operation as PKCS#11 says', () => {
    const fired = emu.faultsFired;
    const iv = randomBytes(12);
    emu.failNext('C_Encrypt', 3, 'CKR_DEVICE_ERROR');
    const results = [1, 2, 3, 4, 5].map(() => ckrOf(() => seal(iv, Buffer.from('y'))));
    expect(results).toEqual([undefined, undefined, pkcs11js.CKR_DEVICE_ERROR, undefined, undefined]);
    expect(emu.faultsFired).toBe(fired + 1);
  });

  it('fails a call outside an operation before it reaches the token (a CKR given by number)', () => {
    const open = emu.openSessions;
    const fired = emu.faultsFired;
    emu.failNext('C_OpenSession', 1, 0x30);
    expect(ckrOf(() => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION))).toBe(pkcs11js.CKR_DEVICE_ERROR);
    expect(emu.openSessions).toBe(open);
    expect(emu.faultsFired).toBe(fired + 1);
    const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    p11.C_CloseSession(s);
  });

  it('runs calls from four worker threads, each on its own session, in parallel', async () => {
    const workers = 4;
    const rounds = 3; // two calls each: C_EncryptInit, C_Encrypt
    const latencyUs = 50_000;
    const plaintext = Buffer.from('from a worker');
    const threads = Array.from({ length: workers }, (_, id) => {
      const worker = new Worker(WORKER, {
        eval: true,
        workerData: { pkcs11js: PKCS11JS, lib: emu.lib, slot, key, id, rounds, plaintext, aad: AAD },
      });
      const ready = new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
      return { worker, ready };
    });
    try {
      await Promise.all(threads.map((w) => w.ready));
      expect(emu.openSessions).toBe(1 + workers);
      emu.latencyUs = latencyUs;
      const before = emu.counts();
      const start = performance.now();
      const results = await Promise.all(
        threads.map(({ worker }) => {
          const done = new Promise<Uint8Array[]>((resolve, reject) => worker.once('message', resolve).once('error', reject));
          worker.postMessage('go');
          return done;
        }),
      );
      const elapsedMs = performance.now() - start;
      emu.latencyUs = 0;
      results.forEach((sealed, id) => {
        sealed.forEach((s, i) => expect(Buffer.from(s).equals(expectedSeal(Buffer.alloc(12, id * 16 + i), plaintext))).toBe(true));
      });
      expect(emu.callsSince(before)).toEqual({ C_EncryptInit: workers * rounds, C_Encrypt: workers * rounds, C_CloseSession: workers });
      const perWorkerMs = (2 * rounds * latencyUs) / 1000;
      // Each worker's own calls follow one another...
      expect(elapsedMs).toBeGreaterThanOrEqual(perWorkerMs);
      // ...but the workers' waits overlap: one after another they would take at least four times as long.
      expect(elapsedMs).toBeLessThan(workers * perWorkerMs);
    } finally {
      emu.latencyUs = 0;
      await Promise.all(threads.map((w) => w.worker.terminate()));
    }
    expect(emu.openSessions).toBe(1);
  });

  it('drops the connection: sessions die in the token, calls fail until C_Finalize and C_Initialize, then a login recovers', () => {
    // SoftHSM2 itself, reached past the emulator: the same module instance in this process.
    const direct = new pkcs11js.PKCS11();
    direct.load(DEFAULT_PKCS11_LIB);
    const tokenKey = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: 'emulator-token-key' },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
    ]);
    expect(tokenKey.length).toBe(8);
    const lost = session;

    emu.dropConnection();
    expect(ckrOf(() => seal(randomBytes(12), Buffer.from('z')))).toBe(pkcs11js.CKR_SESSION_HANDLE_INVALID);
    expect(ckrOf(() => p11.C_GetTokenInfo(slot))).toBe(pkcs11js.CKR_DEVICE_REMOVED);
    expect(ckrOf(() => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION))).toBe(pkcs11js.CKR_DEVICE_REMOVED);
    expect(emu.openSessions).toBe(0);
    // The token really closed the session, and the session object died with it.
    expect(ckrOf(() => direct.C_GetSessionInfo(lost))).toBe(pkcs11js.CKR_SESSION_HANDLE_INVALID);
    const look = direct.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    // The drop logged the application out with its last session; private objects need a login to be seen.
    direct.C_Login(look, pkcs11js.CKU_USER, t.config.pin);
    const find = (label: string) => {
      direct.C_FindObjectsInit(look, [{ type: pkcs11js.CKA_LABEL, value: label }]);
      const found = direct.C_FindObjects(look, 2);
      direct.C_FindObjectsFinal(look);
      return found.length;
    };
    expect([find(KEY_LABEL), find('emulator-token-key')]).toEqual([0, 1]);
    direct.C_CloseSession(look);

    // C_Initialize alone is not a reconnect: the module is still initialized, and still down.
    expect(ckrOf(() => p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }))).toBe(pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED);
    expect(ckrOf(() => p11.C_GetSlotList(true))).toBe(pkcs11js.CKR_DEVICE_REMOVED);

    p11.C_Finalize();
    expect(ckrOf(() => p11.C_GetSlotList(true))).toBe(pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED);
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    connect();
    const iv = randomBytes(12);
    expect(seal(iv, Buffer.from('again')).equals(expectedSeal(iv, Buffer.from('again')))).toBe(true);
    expect(emu.openSessions).toBe(1);
  });

  it("carries keyward's Token: a GCM round trip costs two calls each way, and a drop is climbed over by re-initializing", () => {
    const token = new Token({ ...t.config, lib: emu.lib });
    token.ensureSealKey(true);
    const k = token.generateKey();
    const iv = randomBytes(12);
    const aad = Buffer.from('secret/a');
    const plaintext = Buffer.from('kept in the barrier');

    let before = emu.counts();
    const sealed = Buffer.from(token.encrypt(k, iv, aad, plaintext, Buffer.alloc(plaintext.length + 16)));
    expect(emu.callsSince(before)).toEqual({ C_EncryptInit: 1, C_Encrypt: 1 });
    before = emu.counts();
    expect(token.decrypt(k, iv, aad, sealed, 'round trip').equals(plaintext)).toBe(true);
    expect(emu.callsSince(before)).toEqual({ C_DecryptInit: 1, C_Decrypt: 1 });

    emu.dropConnection();
    before = emu.counts();
    expect(token.decrypt(k, iv, aad, sealed, 'after a drop').equals(plaintext)).toBe(true);
    // The ladder: the failed call, a new session refused, then finalize, initialize, log in, find K, unwrap, retry.
    expect(emu.callsSince(before)).toMatchObject({
      C_DecryptInit: 2,
      C_Decrypt: 1,
      C_CloseSession: 1,
      C_Finalize: 1,
      C_Initialize: 1,
      C_OpenSession: 1,
      C_Login: 1,
      C_UnwrapKey: 1,
    });
    expect(emu.openSessions).toBe(1);
    token.disconnect();
  });
});

describe('HSM emulator settings from the environment (a process without a control file written by a test)', () => {
  /** Runs a node process that loads the emulator with `env` and prints what its calls answered. */
  function child(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
    const script = `
const pkcs11js = require(${JSON.stringify(PKCS11JS)});
const p11 = new pkcs11js.PKCS11();
const code = (f) => { try { f(); return 0; } catch (e) { return e.code ?? e.message; } };
const load = code(() => p11.load(${JSON.stringify(join(import.meta.dirname, 'hsm-emulator', 'build', 'libkeyward-hsm-emulator.so'))}));
if (load !== 0) { console.log(JSON.stringify({ load })); process.exit(0); }
p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
const infos = [1, 2, 3].map(() => code(() => p11.C_GetInfo()));
const start = Date.now();
const slots = p11.C_GetSlotList(true);
const slotListMs = Date.now() - start;
const capped = [1, 2].map(() => code(() => p11.C_OpenSession(slots[0], pkcs11js.CKF_SERIAL_SESSION)));
console.log(JSON.stringify({ infos, slotListMs, capped }));
`;
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  beforeAll(() => {
    // The build the first describe made (or finds up to date); SOFTHSM2_CONF is the first describe's token.
    expect(process.env.SOFTHSM2_CONF).toBeDefined();
  });

  it('takes latency, session cap and the Nth-call fault from the environment, into a control file it creates', async () => {
    const controlPath = join(await mkdtemp(join(tmpdir(), 'keyward-hsm-emulator-')), 'control');
    const r = child({
      KEYWARD_HSM_EMULATOR_CONTROL: controlPath,
      KEYWARD_HSM_EMULATOR_LATENCY_US: '30000',
      KEYWARD_HSM_EMULATOR_MAX_SESSIONS: '1',
      KEYWARD_HSM_EMULATOR_FAIL_FUNCTION: 'C_GetInfo',
      KEYWARD_HSM_EMULATOR_FAIL_NTH: '2',
      KEYWARD_HSM_EMULATOR_FAIL_CKR: 'CKR_DEVICE_MEMORY',
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { infos: number[]; slotListMs: number; capped: number[] };
    expect(out.infos).toEqual([0, pkcs11js.CKR_DEVICE_MEMORY, 0]);
    // pkcs11js asks for the number of slots, then for the list: two round trips.
    expect(out.slotListMs).toBeGreaterThanOrEqual(60);
    // The first session under a cap of one opens (and is kept), the second is refused.
    expect(out.capped).toEqual([0, pkcs11js.CKR_SESSION_COUNT]);
    const made = HsmEmulator.open(controlPath);
    try {
      expect([made.latencyUs, made.maxSessions, made.faultsFired, made.peakSessions]).toEqual([30_000, 1, 1, 1]);
      expect(made.counts()).toMatchObject({ C_GetFunctionList: 1, C_Initialize: 1, C_GetInfo: 3, C_OpenSession: 2 });
    } finally {
      made.close();
    }
  });

  it('refuses to load with a setting it cannot read, and says which', () => {
    const r = child({ KEYWARD_HSM_EMULATOR_CONTROL: '', KEYWARD_HSM_EMULATOR_FAIL_FUNCTION: 'C_NoSuchCall' });
    expect(r.status, r.stderr).toBe(0);
    // pkcs11js reports a failed C_GetFunctionList in the message only.
    expect(JSON.parse(r.stdout)).toEqual({ load: expect.stringMatching(/^CKR_GENERAL_ERROR/) });
    expect(r.stderr).toMatch(/keyward-hsm-emulator: not a PKCS#11 function name: KEYWARD_HSM_EMULATOR_FAIL_FUNCTION/);
  });
});
