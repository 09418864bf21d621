import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PKCS11_LIB, findSlot } from '../src/pkcs11/module.js';
import { CALLER_IV_ENCRYPTIONS, type FipsModes, HsmEmulator } from './support/hsm-emulator.js';
import { freshProcessToken, type TestToken } from './support/softhsm.js';

const KEY = randomBytes(32);
const AAD = Buffer.from('keyward/fips');
const PLAINTEXT = Buffer.from('a value the barrier would store');
/** RFC 5649 key wrap: SoftHSM2's CKM_AES_KEY_WRAP_PAD, and the number NSS (PKCS#11 3.0, CKM_AES_KEY_WRAP_KWP) gives it. */
const KWP_SOFTHSM = 0x210a;
const KWP_NSS = 0x210b;
const LABELS = { gcm: 'fips-gcm', wrapping: 'fips-wrapping', wrapped: 'fips-wrapped' } as const;

function gcm(iv: Buffer): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad: AAD, tagBits: 128 } as pkcs11js.GcmParams,
  };
}

/**
 * The CKR code a call fails with, or undefined when it succeeds. pkcs11js 2.1.7's C_CreateObject
 * (like C_CopyObject and C_SetAttributeValue) throws a plain Error, "CKR_NAME:code", not a Pkcs11Error.
 */
function ckrOf(call: () => unknown): number | undefined {
  try {
    call();
    return undefined;
  } catch (err) {
    if (err instanceof pkcs11js.Pkcs11Error) return err.code;
    const plain = err instanceof Error ? /^CKR_\w+:(\d+)$/.exec(err.message) : null;
    if (plain) return Number(plain[1]);
    throw err;
  }
}

/** AES-256-GCM in node:crypto: what the token's output must be, whoever chose the IV. */
function nodeOpen(iv: Buffer, sealed: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', KEY, iv).setAAD(AAD).setAuthTag(sealed.subarray(-16));
  return Buffer.concat([d.update(sealed.subarray(0, -16)), d.final()]);
}

function nodeSeal(iv: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', KEY, iv).setAAD(AAD);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

let t: TestToken;
let emu: HsmEmulator;
let p11: pkcs11js.PKCS11;
/** SoftHSM2 itself, past the emulator: the same module instance in this process. */
let direct: pkcs11js.PKCS11;
let slot: Buffer;
let session: Buffer;
let keys: Record<keyof typeof LABELS, Buffer>;

function findKey(label: string): Buffer {
  p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
  const found = p11.C_FindObjects(session, 2);
  p11.C_FindObjectsFinal(session);
  if (found.length !== 1) throw new Error(`${found.length} keys labelled ${label}`);
  return found[0]!;
}

/** Opens a logged-in session and finds the token keys: after a C_Initialize, every handle is new. */
function connect(): void {
  slot = findSlot(p11, t.config);
  session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  p11.C_Login(session, pkcs11js.CKU_USER, t.config.pin);
  keys = { gcm: findKey(LABELS.gcm), wrapping: findKey(LABELS.wrapping), wrapped: findKey(LABELS.wrapped) };
}

/** Reconnects to the module as another vendor's HSM: it reads its modes at C_Initialize. */
function become(modes: FipsModes): void {
  p11.C_Finalize();
  emu.setFipsModes(modes);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  connect();
}

function open(iv: Buffer, sealed: Buffer, module = p11): Buffer {
  const s = module === p11 ? session : direct.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    module.C_DecryptInit(s, gcm(iv), keys.gcm);
    return Buffer.from(module.C_Decrypt(s, sealed, Buffer.alloc(sealed.length)));
  } finally {
    if (s !== session) direct.C_CloseSession(s);
  }
}

/** One AES block under a key, by ECB: two handles hold the same key when their blocks match. */
function block(key: Buffer): Buffer {
  p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, key);
  return Buffer.from(p11.C_Encrypt(session, Buffer.alloc(16, 0x5a), Buffer.alloc(16)));
}

function unwrap(mechanism: number, wrapped: Buffer): Buffer {
  return p11.C_UnwrapKey(session, { mechanism }, keys.wrapping, wrapped, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
  ]);
}

function wrap(mechanism: number): Buffer {
  return Buffer.from(p11.C_WrapKey(session, { mechanism }, keys.wrapping, keys.wrapped, Buffer.alloc(64)));
}

const callerIvEncryptions = () => emu.counts()[CALLER_IV_ENCRYPTIONS];

beforeAll(async () => {
  t = await freshProcessToken('keyward-fips');
  emu = (await HsmEmulator.create()).useInProcess();
  p11 = new pkcs11js.PKCS11();
  p11.load(emu.lib);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  direct = new pkcs11js.PKCS11();
  direct.load(DEFAULT_PKCS11_LIB);
  // Token objects outlive the reconnects between modes; made while the module still takes a plaintext key.
  slot = findSlot(p11, t.config);
  session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  p11.C_Login(session, pkcs11js.CKU_USER, t.config.pin);
  const secret = (label: string) => [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
  ];
  p11.C_CreateObject(session, [
    ...secret(LABELS.gcm),
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_VALUE, value: KEY },
  ]);
  const generate = (label: string, attrs: pkcs11js.Template) =>
    p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [...secret(label), { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, ...attrs]);
  generate(LABELS.wrapping, [
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
  ]);
  generate(LABELS.wrapped, [
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
  ]);
  keys = { gcm: findKey(LABELS.gcm), wrapping: findKey(LABELS.wrapping), wrapped: findKey(LABELS.wrapped) };
});

afterAll(() => emu?.close());

describe('HSM emulator GCM IVs: caller (the default, SoftHSM2 as it is)', () => {
  beforeAll(() => become({}));

  it('takes the caller IV, zero or not, and writes nothing back', () => {
    for (const iv of [randomBytes(12), Buffer.alloc(12)]) {
      const given = Buffer.from(iv);
      p11.C_EncryptInit(session, gcm(iv), keys.gcm);
      const sealed = Buffer.from(p11.C_Encrypt(session, PLAINTEXT, Buffer.alloc(PLAINTEXT.length + 16)));
      expect(iv.equals(given)).toBe(true);
      expect(sealed.equals(nodeSeal(iv, PLAINTEXT))).toBe(true);
    }
    // The tripwire watches the vendor modes only: here the caller's IV is the rule.
    expect(callerIvEncryptions()).toBe(0);
  });
});

/** The IV-choosing vendors: what the caller passes, and where the module's IV comes back. */
const VENDORS = [
  { gcmIv: 'cloudhsm', zeroIvs: [12], refusedZeroIvs: [8, 16], returns: 'written into pIv' },
  { gcmIv: 'protectserver', zeroIvs: [12, 16], refusedZeroIvs: [0, 129], returns: 'written into pIv' },
  { gcmIv: 'luna', zeroIvs: [12, 16], refusedZeroIvs: [8, 32], returns: 'appended after the tag' },
] as const;

describe.each(VENDORS)('HSM emulator GCM IVs: $gcmIv ($returns)', ({ gcmIv, zeroIvs, refusedZeroIvs }) => {
  const luna = gcmIv === 'luna';

  beforeAll(() => become({ gcmIv }));

  /**
   * Encrypts PLAINTEXT under a zero IV of `ivBytes`: the IV the caller then has (pIv, or Luna's
   * last 16 bytes of output), ciphertext ‖ tag, and what pIv held when C_EncryptInit returned.
   */
  function seal(ivBytes: number): { iv: Buffer; sealed: Buffer; ivAfterInit: Buffer } {
    const iv = Buffer.alloc(ivBytes);
    p11.C_EncryptInit(session, gcm(iv), keys.gcm);
    const ivAfterInit = Buffer.from(iv);
    const out = Buffer.from(p11.C_Encrypt(session, PLAINTEXT, Buffer.alloc(PLAINTEXT.length + 32)));
    return luna ? { iv: out.subarray(-16), sealed: out.subarray(0, -16), ivAfterInit } : { iv, sealed: out, ivAfterInit };
  }

  it('refuses an IV the caller chose with CKR_MECHANISM_PARAM_INVALID, and starts no operation', () => {
    const oneBitSet = Buffer.alloc(12);
    oneBitSet[11] = 1;
    for (const iv of [randomBytes(12), oneBitSet, randomBytes(16)]) {
      const given = Buffer.from(iv);
      expect(ckrOf(() => p11.C_EncryptInit(session, gcm(iv), keys.gcm))).toBe(pkcs11js.CKR_MECHANISM_PARAM_INVALID);
      expect(iv.equals(given)).toBe(true);
    }
    for (const bytes of refusedZeroIvs) {
      const iv = bytes === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.alloc(bytes);
      expect(ckrOf(() => p11.C_EncryptInit(session, gcm(iv), keys.gcm)), `a zero IV of ${bytes} bytes`).toBe(pkcs11js.CKR_MECHANISM_PARAM_INVALID);
    }
    // No operation was left active: the session encrypts at once.
    expect(seal(zeroIvs[0]).sealed.length).toBe(PLAINTEXT.length + 16);
    expect(callerIvEncryptions()).toBe(0);
  });

  it.each(zeroIvs)('chooses a fresh IV for each encryption from a %i-byte zero IV; it is standard AES-GCM, through the module, SoftHSM2 and node:crypto', (ivBytes) => {
    const before = emu.counts();
    const chosen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { iv, sealed, ivAfterInit } = seal(ivBytes);
      expect(iv.length).toBe(luna ? 16 : ivBytes);
      expect(iv.equals(Buffer.alloc(iv.length))).toBe(false);
      // CloudHSM and ProtectServer hand the IV back at C_EncryptInit, before C_Encrypt; Luna leaves pIv alone.
      expect(ivAfterInit.equals(luna ? Buffer.alloc(ivBytes) : iv)).toBe(true);
      expect(sealed.length).toBe(PLAINTEXT.length + 16);
      chosen.add(iv.toString('hex'));
      if (i < 3) {
        expect(open(iv, sealed).equals(PLAINTEXT)).toBe(true);
        expect(open(iv, sealed, direct).equals(PLAINTEXT)).toBe(true);
        expect(nodeOpen(iv, sealed).equals(PLAINTEXT)).toBe(true);
      }
    }
    expect(chosen.size).toBe(50);
    // The module's own C_GenerateRandom is not the application's: only the calls made are counted.
    expect(emu.callsSince(before)).toEqual({ C_EncryptInit: 50, C_Encrypt: 50, C_DecryptInit: 3, C_Decrypt: 3 });
    expect(callerIvEncryptions()).toBe(0);
  });

  it('decrypts as any module does: the caller passes the IV', () => {
    const iv = randomBytes(luna ? 16 : 12);
    expect(open(iv, nodeSeal(iv, PLAINTEXT)).equals(PLAINTEXT)).toBe(true);
  });
});

describe.each(['cloudhsm', 'protectserver'] as const)('HSM emulator GCM IVs: %s hands the IV back in pIv', (gcmIv) => {
  beforeAll(() => become({ gcmIv }));

  it("writes it into the caller's own memory: pkcs11js gives the module the iv Buffer's bytes, not a copy", () => {
    const around = Buffer.alloc(4 + 12 + 4, 0xee).fill(0, 4, 16);
    const iv = around.subarray(4, 16);
    p11.C_EncryptInit(session, gcm(iv), keys.gcm);
    const sealed = Buffer.from(p11.C_Encrypt(session, PLAINTEXT, Buffer.alloc(PLAINTEXT.length + 16)));
    expect(iv.equals(Buffer.alloc(12))).toBe(false);
    // Exactly the 12 bytes of the view, inside the larger buffer that holds it.
    expect([around.subarray(0, 4), around.subarray(16)].map((b) => b.toString('hex'))).toEqual(['eeeeeeee', 'eeeeeeee']);
    expect(nodeOpen(Buffer.from(iv), sealed).equals(PLAINTEXT)).toBe(true);
  });

  it('writes it into shared memory too, as in the session pool, whose mailboxes are Buffers over a SharedArrayBuffer', () => {
    const mailbox = new SharedArrayBuffer(64);
    const iv = Buffer.from(mailbox).subarray(8, 20);
    p11.C_EncryptInit(session, gcm(iv), keys.gcm);
    const sealed = Buffer.from(p11.C_Encrypt(session, PLAINTEXT, Buffer.alloc(PLAINTEXT.length + 16)));
    const seen = Buffer.from(new Uint8Array(mailbox, 8, 12));
    expect(seen.equals(Buffer.alloc(12))).toBe(false);
    expect(nodeOpen(seen, sealed).equals(PLAINTEXT)).toBe(true);
  });

  it('writes nothing when the target refuses the encryption', () => {
    const iv = Buffer.alloc(12);
    // A key that may not encrypt: SoftHSM2 answers CKR_KEY_FUNCTION_NOT_PERMITTED.
    expect(ckrOf(() => p11.C_EncryptInit(session, gcm(iv), keys.wrapping))).toBe(pkcs11js.CKR_KEY_FUNCTION_NOT_PERMITTED);
    expect(iv.equals(Buffer.alloc(12))).toBe(true);
  });
});

describe('HSM emulator GCM IVs: luna appends the IV to the output', () => {
  beforeAll(() => become({ gcmIv: 'luna' }));

  it('makes room for it: 16 bytes more than ciphertext ‖ tag, or CKR_BUFFER_TOO_SMALL with the operation kept', () => {
    p11.C_EncryptInit(session, gcm(Buffer.alloc(16)), keys.gcm);
    expect(ckrOf(() => p11.C_Encrypt(session, PLAINTEXT, Buffer.alloc(PLAINTEXT.length + 16)))).toBe(pkcs11js.CKR_BUFFER_TOO_SMALL);
    const out = Buffer.from(p11.C_Encrypt(session, PLAINTEXT, Buffer.alloc(PLAINTEXT.length + 16 + 16)));
    expect(out.length).toBe(PLAINTEXT.length + 32);
    expect(nodeOpen(out.subarray(-16), out.subarray(0, -16)).equals(PLAINTEXT)).toBe(true);
  });

  it('appends it in a multi-part encryption too, from C_EncryptFinal', () => {
    p11.C_EncryptInit(session, gcm(Buffer.alloc(12)), keys.gcm);
    const first = Buffer.from(p11.C_EncryptUpdate(session, PLAINTEXT.subarray(0, 20), Buffer.alloc(64)));
    const rest = Buffer.from(p11.C_EncryptUpdate(session, PLAINTEXT.subarray(20), Buffer.alloc(64)));
    const final = Buffer.from(p11.C_EncryptFinal(session, Buffer.alloc(64)));
    const out = Buffer.concat([first, rest, final]);
    expect(out.length).toBe(PLAINTEXT.length + 32);
    expect(nodeOpen(out.subarray(-16), out.subarray(0, -16)).equals(PLAINTEXT)).toBe(true);
  });

  it('appends nothing to an encryption other than AES-GCM', () => {
    expect(block(keys.wrapped).length).toBe(16);
  });
});

describe('HSM emulator: no plaintext key import (NSS in FIPS mode)', () => {
  beforeAll(() => become({ refuseValueImport: true }));

  it('refuses C_CreateObject of a secret key with CKA_VALUE with CKR_ATTRIBUTE_VALUE_INVALID, before the token sees it', () => {
    const before = emu.counts();
    const template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: 'fips-imported' },
      { type: pkcs11js.CKA_VALUE, value: randomBytes(32) },
    ];
    expect(ckrOf(() => p11.C_CreateObject(session, template))).toBe(pkcs11js.CKR_ATTRIBUTE_VALUE_INVALID);
    expect(emu.callsSince(before)).toEqual({ C_CreateObject: 1 });
    p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: 'fips-imported' }]);
    expect(p11.C_FindObjects(session, 1)).toEqual([]);
    p11.C_FindObjectsFinal(session);
  });

  it('still takes a data object, whose CKA_VALUE is no key', () => {
    const data = p11.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE, value: Buffer.from('not a key') },
    ]);
    expect(p11.C_GetAttributeValue(session, data, [{ type: pkcs11js.CKA_VALUE }])[0]!.value).toEqual(Buffer.from('not a key'));
  });

  it('lets keys in the ways a FIPS module does: made inside (C_GenerateKey), or unwrapped (C_UnwrapKey)', () => {
    const made = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
    ]);
    expect(block(made).length).toBe(16);
    const unwrapped = unwrap(KWP_SOFTHSM, wrap(KWP_SOFTHSM));
    expect(block(unwrapped).equals(block(keys.wrapped))).toBe(true);
  });
});

describe('HSM emulator: mechanisms hidden, or offered under another number', () => {
  let plainList: number[];
  let plainKwpInfo: pkcs11js.MechanismInfo;
  let wrappedUnderSoftHsmNumber: Buffer;

  beforeAll(() => {
    become({});
    plainList = p11.C_GetMechanismList(slot);
    plainKwpInfo = p11.C_GetMechanismInfo(slot, KWP_SOFTHSM);
    wrappedUnderSoftHsmNumber = wrap(KWP_SOFTHSM);
  });

  it('offers what SoftHSM2 offers when told nothing: KWP as 0x210A, no 0x210B', () => {
    expect(plainList).toEqual(expect.arrayContaining([KWP_SOFTHSM, pkcs11js.CKM_AES_GCM, pkcs11js.CKM_AES_ECB]));
    expect(plainList).not.toContain(KWP_NSS);
    expect(wrappedUnderSoftHsmNumber.length).toBe(40);
  });

  it('hides mechanisms: gone from the list, and CKR_MECHANISM_INVALID wherever named', () => {
    become({ hideMechanisms: [KWP_SOFTHSM, pkcs11js.CKM_AES_GCM] });
    expect(p11.C_GetMechanismList(slot)).toEqual(plainList.filter((m) => m !== KWP_SOFTHSM && m !== pkcs11js.CKM_AES_GCM));
    expect(ckrOf(() => p11.C_GetMechanismInfo(slot, KWP_SOFTHSM))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
    expect(ckrOf(() => wrap(KWP_SOFTHSM))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
    expect(ckrOf(() => unwrap(KWP_SOFTHSM, wrappedUnderSoftHsmNumber))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
    expect(ckrOf(() => p11.C_EncryptInit(session, gcm(randomBytes(12)), keys.gcm))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
    expect(ckrOf(() => p11.C_DecryptInit(session, gcm(randomBytes(12)), keys.gcm))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
    // What is not hidden still works.
    expect(p11.C_GetMechanismInfo(slot, pkcs11js.CKM_AES_ECB).maxKeySize).toBeGreaterThanOrEqual(32);
    expect(block(keys.wrapped).length).toBe(16);
  });

  it("renumbers: SoftHSM2's RFC 5649 offered as NSS's 0x210B only, and a keyring wrapped under 0x210A stays readable", () => {
    become({ renumber: [[KWP_SOFTHSM, KWP_NSS]] });
    const list = p11.C_GetMechanismList(slot);
    expect(list).toContain(KWP_NSS);
    expect(list).not.toContain(KWP_SOFTHSM);
    expect(list.length).toBe(plainList.length);
    expect(p11.C_GetMechanismInfo(slot, KWP_NSS)).toEqual(plainKwpInfo);
    expect(ckrOf(() => p11.C_GetMechanismInfo(slot, KWP_SOFTHSM))).toBe(pkcs11js.CKR_MECHANISM_INVALID);

    const unwrapped = unwrap(KWP_NSS, wrappedUnderSoftHsmNumber);
    expect(block(unwrapped).equals(block(keys.wrapped))).toBe(true);
    // The same algorithm under the new number: RFC 5649 is deterministic.
    expect(wrap(KWP_NSS).equals(wrappedUnderSoftHsmNumber)).toBe(true);
    expect(ckrOf(() => unwrap(KWP_SOFTHSM, wrappedUnderSoftHsmNumber))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
    expect(ckrOf(() => wrap(KWP_SOFTHSM))).toBe(pkcs11js.CKR_MECHANISM_INVALID);
  });

  it("gives a renumbered mechanism a number the target already uses: the target's own one is gone", () => {
    become({ renumber: [[KWP_SOFTHSM, pkcs11js.CKM_AES_KEY_WRAP]] });
    const list = p11.C_GetMechanismList(slot);
    expect(list.filter((m) => m === pkcs11js.CKM_AES_KEY_WRAP)).toHaveLength(1);
    expect(list).not.toContain(KWP_SOFTHSM);
    // CKM_AES_KEY_WRAP (RFC 3394) of a 32-byte key is 40 bytes too, but other bytes: this is RFC 5649.
    expect(wrap(pkcs11js.CKM_AES_KEY_WRAP).equals(wrappedUnderSoftHsmNumber)).toBe(true);
  });
});

describe('HSM emulator FIPS modes from the environment', () => {
  afterAll(() => become({}));

  it.each([
    ['KEYWARD_HSM_EMULATOR_GCM_IV', 'fips'],
    ['KEYWARD_HSM_EMULATOR_REFUSE_VALUE_IMPORT', 'yes'],
    ['KEYWARD_HSM_EMULATOR_HIDE_MECHANISMS', '0x210a,'],
    ['KEYWARD_HSM_EMULATOR_RENUMBER', '0x210a-0x210b'],
  ])('refuses C_Initialize with %s=%s, before the target is initialized', (variable, value) => {
    p11.C_Finalize();
    process.env[variable] = value;
    try {
      expect(ckrOf(() => p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }))).toBe(pkcs11js.CKR_GENERAL_ERROR);
      expect(ckrOf(() => direct.C_GetSlotList(true))).toBe(pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED);
    } finally {
      emu.setFipsModes({});
      p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    }
    connect();
  });

  it('env() carries the modes to a spawned process, whose module says which setting it cannot read', () => {
    const child = (env: Record<string, string>) => {
      const script = `
const pkcs11js = require(${JSON.stringify(createRequire(import.meta.url).resolve('pkcs11js'))});
const p11 = new pkcs11js.PKCS11();
p11.load(process.env.KEYWARD_HSM_LIB);
try { p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }); } catch (e) { console.log(JSON.stringify({ error: e.message })); process.exit(0); }
const list = p11.C_GetMechanismList(p11.C_GetSlotList(true)[0]);
console.log(JSON.stringify({ kwp: list.includes(0x210a), kw: list.includes(0x2109), renumbered: list.includes(0x80000001) }));
`;
      return spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    };
    emu.setFipsModes({ gcmIv: 'luna', hideMechanisms: [KWP_SOFTHSM], renumber: [[0x2109, 0x80000001]] });
    // A control block of its own (in its memory): this file's counts stay this process's.
    const env = { ...emu.env(), KEYWARD_HSM_EMULATOR_CONTROL: '' };
    expect(env).toMatchObject({
      KEYWARD_HSM_EMULATOR_GCM_IV: 'luna',
      KEYWARD_HSM_EMULATOR_REFUSE_VALUE_IMPORT: '0',
      KEYWARD_HSM_EMULATOR_HIDE_MECHANISMS: '0x210a',
      KEYWARD_HSM_EMULATOR_RENUMBER: '0x2109:0x80000001',
    });
    const good = child(env);
    expect(JSON.parse(good.stdout), good.stderr).toEqual({ kwp: false, kw: false, renumbered: true });
    const bad = child({ ...env, KEYWARD_HSM_EMULATOR_GCM_IV: 'fips' });
    expect(JSON.parse(bad.stdout)).toEqual({ error: expect.stringMatching(/^CKR_GENERAL_ERROR/) });
    expect(bad.stderr).toMatch(/keyward-hsm-emulator: not caller, cloudhsm, luna or protectserver: KEYWARD_HSM_EMULATOR_GCM_IV/);
  });
});
