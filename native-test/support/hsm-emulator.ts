import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';

const BUILD_SCRIPT = join(import.meta.dirname, '..', 'hsm-emulator', 'build.sh');

/**
 * The members of CK_FUNCTION_LIST (PKCS#11 2.40) in their order: the emulator's function indexes
 * and the order of its call counters (FUNCTIONS in native-test/hsm-emulator/emulator.c).
 */
export const FUNCTIONS = [
  'C_Initialize', 'C_Finalize', 'C_GetInfo', 'C_GetFunctionList', 'C_GetSlotList', 'C_GetSlotInfo',
  'C_GetTokenInfo', 'C_GetMechanismList', 'C_GetMechanismInfo', 'C_InitToken', 'C_InitPIN',
  'C_SetPIN', 'C_OpenSession', 'C_CloseSession', 'C_CloseAllSessions', 'C_GetSessionInfo',
  'C_GetOperationState', 'C_SetOperationState', 'C_Login', 'C_Logout', 'C_CreateObject',
  'C_CopyObject', 'C_DestroyObject', 'C_GetObjectSize', 'C_GetAttributeValue',
  'C_SetAttributeValue', 'C_FindObjectsInit', 'C_FindObjects', 'C_FindObjectsFinal',
  'C_EncryptInit', 'C_Encrypt', 'C_EncryptUpdate', 'C_EncryptFinal', 'C_DecryptInit', 'C_Decrypt',
  'C_DecryptUpdate', 'C_DecryptFinal', 'C_DigestInit', 'C_Digest', 'C_DigestUpdate', 'C_DigestKey',
  'C_DigestFinal', 'C_SignInit', 'C_Sign', 'C_SignUpdate', 'C_SignFinal', 'C_SignRecoverInit',
  'C_SignRecover', 'C_VerifyInit', 'C_Verify', 'C_VerifyUpdate', 'C_VerifyFinal',
  'C_VerifyRecoverInit', 'C_VerifyRecover', 'C_DigestEncryptUpdate', 'C_DecryptDigestUpdate',
  'C_SignEncryptUpdate', 'C_DecryptVerifyUpdate', 'C_GenerateKey', 'C_GenerateKeyPair', 'C_WrapKey',
  'C_UnwrapKey', 'C_DeriveKey', 'C_SeedRandom', 'C_GenerateRandom', 'C_GetFunctionStatus',
  'C_CancelFunction', 'C_WaitForSlotEvent',
] as const;
export type Pkcs11Function = (typeof FUNCTIONS)[number];

/**
 * What counts() reports besides calls: AES-GCM encryptions the target ran under an IV the caller
 * chose while the module should choose IVs (a FIPS-mode gcmIv): a tripwire that must stay 0.
 */
export const CALLER_IV_ENCRYPTIONS = 'caller_iv_encryptions';
export type Counter = Pkcs11Function | typeof CALLER_IV_ENCRYPTIONS;

/**
 * The control block (struct control in emulator.c): one uint64 per field in the host's byte order,
 * little-endian on the machines keyward runs on; counted in words. Change both together and bump VERSION.
 */
const LAYOUT = {
  MAGIC: Buffer.from('KWHSMEMU').readBigUInt64LE(0),
  VERSION: 1n,
  HEADER_WORDS: 32,
  words: {
    magic: 0,
    version: 1,
    functionCount: 2,
    latencyUs: 3,
    maxSessions: 4,
    failFunction: 5,
    failCountdown: 6,
    failCkr: 7,
    faultsFired: 8,
    dropGeneration: 9,
    openSessions: 10,
    peakSessions: 11,
    callerIvEncryptions: 12,
  },
} as const;
const CONTROL_BYTES = (LAYOUT.HEADER_WORDS + FUNCTIONS.length) * 8;
type Field = keyof typeof LAYOUT.words;

/** Builds the emulator when missing or older than its source (scripts/setup.sh does too) and returns its path. */
export function buildEmulator(): string {
  const r = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the HSM emulator failed (needs cc and libp11-kit-dev; scripts/setup.sh installs them): ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

/** A CKR given by name (as pkcs11js names its constants) or number. */
function ckrCode(ckr: string | number): number {
  if (typeof ckr === 'number') return ckr;
  const code = (pkcs11js as unknown as Record<string, unknown>)[ckr];
  if (!ckr.startsWith('CKR_') || typeof code !== 'number') throw new Error(`unknown CKR ${ckr}`);
  return code;
}

/**
 * How a vendor's HSM in FIPS mode answers, where SoftHSM2 does not (docs/HSM.md, "FIPS modes").
 * The module reads them from the environment at each C_Initialize.
 */
export interface FipsModes {
  /**
   * Who chooses AES-GCM encryption IVs: `caller` (SoftHSM2's way, the default) or the module, as
   * `cloudhsm` (12 zero bytes in, its IV written into them at C_EncryptInit), `protectserver` (a zero
   * IV of any length up to 128 bytes filled at C_EncryptInit) or `luna` (a 12- or 16-byte zero IV
   * in, a 16-byte IV appended to C_Encrypt's output after the tag). The modules refuse any other IV
   * with CKR_MECHANISM_PARAM_INVALID.
   */
  gcmIv?: 'caller' | 'cloudhsm' | 'luna' | 'protectserver';
  /** C_CreateObject of a secret or private key with CKA_VALUE answers CKR_ATTRIBUTE_VALUE_INVALID, as NSS in FIPS mode. */
  refuseValueImport?: boolean;
  /** Mechanisms the module does not offer: missing from C_GetMechanismList, CKR_MECHANISM_INVALID wherever named. */
  hideMechanisms?: number[];
  /** `[target, offered]`: the target's mechanism offered under the second number only (e.g. `[0x210a, 0x210b]`). */
  renumber?: Array<[target: number, offered: number]>;
}

export interface EmulatorSettings extends FipsModes {
  latencyUs?: number;
  maxSessions?: number;
}

const hex = (mechanism: number): string => {
  if (!Number.isInteger(mechanism) || mechanism < 0) throw new Error(`not a mechanism number: ${mechanism}`);
  return `0x${mechanism.toString(16)}`;
};

/** The variables the module reads the FIPS modes from; all of them, so a spawned process inherits none from its parent. */
function fipsEnv(modes: FipsModes): Record<string, string> {
  return {
    KEYWARD_HSM_EMULATOR_GCM_IV: modes.gcmIv ?? 'caller',
    KEYWARD_HSM_EMULATOR_REFUSE_VALUE_IMPORT: modes.refuseValueImport ? '1' : '0',
    KEYWARD_HSM_EMULATOR_HIDE_MECHANISMS: (modes.hideMechanisms ?? []).map(hex).join(','),
    KEYWARD_HSM_EMULATOR_RENUMBER: (modes.renumber ?? []).map(([target, offered]) => `${hex(target)}:${hex(offered)}`).join(','),
  };
}

/** Whether this process's module was already pointed at a control file (it reads the variable once, when loaded). */
let processControl: string | undefined;

/**
 * The HSM emulator (native-test/hsm-emulator, docs/HSM.md) and its control file: settings are
 * written and counters read while the module runs, in this process or in a spawned one.
 */
export class HsmEmulator {
  private constructor(
    /** The PKCS#11 module to load instead of SoftHSM2's. */
    readonly lib: string,
    readonly controlPath: string,
    private readonly fd: number,
    private modes: FipsModes,
  ) {}

  /** A new control file for one process (the one given `env`, or this one after `useInProcess`). */
  static async create(settings: EmulatorSettings = {}): Promise<HsmEmulator> {
    const { latencyUs, maxSessions, ...modes } = settings;
    fipsEnv(modes); // a bad mechanism number fails here, not in a later env()
    const lib = buildEmulator();
    const controlPath = join(await mkdtemp(join(tmpdir(), 'keyward-hsm-emulator-')), 'control');
    const block = Buffer.alloc(CONTROL_BYTES);
    block.writeBigUInt64LE(LAYOUT.MAGIC, LAYOUT.words.magic * 8);
    block.writeBigUInt64LE(LAYOUT.VERSION, LAYOUT.words.version * 8);
    block.writeBigUInt64LE(BigInt(FUNCTIONS.length), LAYOUT.words.functionCount * 8);
    block.writeBigUInt64LE(BigInt(latencyUs ?? 0), LAYOUT.words.latencyUs * 8);
    block.writeBigUInt64LE(BigInt(maxSessions ?? 0), LAYOUT.words.maxSessions * 8);
    const fd = openSync(controlPath, 'wx+', 0o600);
    writeSync(fd, block, 0, block.length, 0);
    return new HsmEmulator(lib, controlPath, fd, modes);
  }

  /** A control file a module already made (from the environment, in a process given only the variables). */
  static open(controlPath: string): HsmEmulator {
    const fd = openSync(controlPath, 'r+');
    const emu = new HsmEmulator(buildEmulator(), controlPath, fd, {});
    if (emu.readWord('magic') !== LAYOUT.MAGIC || emu.readWord('version') !== LAYOUT.VERSION || emu.read('functionCount') !== FUNCTIONS.length) {
      emu.close();
      throw new Error(`${controlPath} is not an HSM emulator control block of version ${LAYOUT.VERSION}`);
    }
    return emu;
  }

  /** The environment a spawned keyward server needs to use the emulator with this control file and these FIPS modes. */
  env(): Record<string, string> {
    return { KEYWARD_HSM_LIB: this.lib, KEYWARD_HSM_EMULATOR_CONTROL: this.controlPath, ...fipsEnv(this.modes) };
  }

  /**
   * Points this process's module at the control file (read once, when the module is first loaded)
   * and at the FIPS modes (read at each C_Initialize).
   */
  useInProcess(): this {
    if (processControl) throw new Error(`this process's HSM emulator already uses ${processControl}; use one emulator per test file`);
    processControl = this.controlPath;
    process.env.KEYWARD_HSM_EMULATOR_CONTROL = this.controlPath;
    Object.assign(process.env, fipsEnv(this.modes));
    return this;
  }

  /**
   * Replaces the FIPS modes: env() gives them from now on, and in the process that useInProcess()
   * chose, the module takes them at its next C_Initialize (after a C_Finalize).
   */
  setFipsModes(modes: FipsModes): void {
    const vars = fipsEnv(modes);
    this.modes = structuredClone(modes);
    if (processControl === this.controlPath) Object.assign(process.env, vars);
  }

  /** The round trip every call waits before it goes on, in microseconds. */
  get latencyUs(): number {
    return this.read('latencyUs');
  }
  set latencyUs(us: number) {
    this.write('latencyUs', us);
  }

  /** Open sessions past this are refused with CKR_SESSION_COUNT; 0 lifts the cap. */
  get maxSessions(): number {
    return this.read('maxSessions');
  }
  set maxSessions(n: number) {
    this.write('maxSessions', n);
  }

  /** The `nth` call of `fn` from now fails with `ckr`, once; it replaces a fault armed before. */
  failNext(fn: Pkcs11Function, nth: number, ckr: string | number): void {
    if (!Number.isInteger(nth) || nth < 1) throw new Error(`nth must be 1 or more, not ${nth}`);
    const code = ckrCode(ckr);
    if (code === pkcs11js.CKR_OK) throw new Error('a fault must be an error, not CKR_OK');
    // Disarm first, so no call sees the new function with the old countdown.
    this.write('failCountdown', 0);
    this.write('failFunction', FUNCTIONS.indexOf(fn));
    this.write('failCkr', code);
    this.write('failCountdown', nth);
  }

  /** Disarms a fault armed by failNext that has not fired yet (a no-op when none is armed). */
  disarmFault(): void {
    this.write('failCountdown', 0);
  }

  /** How many armed faults have fired. */
  get faultsFired(): number {
    return this.read('faultsFired');
  }

  /** Drops the connection: the module's sessions close, and its calls fail until C_Finalize and C_Initialize. */
  dropConnection(): void {
    this.write('dropGeneration', this.read('dropGeneration') + 1);
  }

  get openSessions(): number {
    return this.read('openSessions');
  }

  get peakSessions(): number {
    return this.read('peakSessions');
  }

  /** Starts the high-water mark of open sessions again from the sessions open now. */
  resetPeakSessions(): void {
    this.write('peakSessions', this.openSessions);
  }

  /**
   * Calls per function so far (since the control file was made, across module reloads), and
   * caller_iv_encryptions (CALLER_IV_ENCRYPTIONS).
   */
  counts(): Record<Counter, number> {
    const block = Buffer.alloc(FUNCTIONS.length * 8);
    readSync(this.fd, block, 0, block.length, LAYOUT.HEADER_WORDS * 8);
    const calls = Object.fromEntries(FUNCTIONS.map((fn, i) => [fn, Number(block.readBigUInt64LE(i * 8))])) as Record<Pkcs11Function, number>;
    return { ...calls, [CALLER_IV_ENCRYPTIONS]: this.read('callerIvEncryptions') };
  }

  /** What changed since `before` (a `counts()`), leaving out what did not. */
  callsSince(before: Record<Counter, number>): Partial<Record<Counter, number>> {
    const now = this.counts();
    const counters = [...FUNCTIONS, CALLER_IV_ENCRYPTIONS] as const;
    return Object.fromEntries(counters.filter((c) => now[c] !== before[c]).map((c) => [c, now[c] - before[c]]));
  }

  close(): void {
    closeSync(this.fd);
  }

  private read(field: Field): number {
    return Number(this.readWord(field));
  }

  private readWord(field: Field): bigint {
    const word = Buffer.alloc(8);
    readSync(this.fd, word, 0, 8, LAYOUT.words[field] * 8);
    return word.readBigUInt64LE(0);
  }

  /** One aligned 8-byte write: the module sees the old value or the new one. */
  private write(field: Field, value: number): void {
    const word = Buffer.alloc(8);
    word.writeBigUInt64LE(BigInt(value));
    writeSync(this.fd, word, 0, 8, LAYOUT.words[field] * 8);
  }
}
