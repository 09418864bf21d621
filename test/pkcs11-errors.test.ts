import pkcs11js from 'pkcs11js';
import { describe, expect, it } from 'vitest';
import { asTokenError, failureRung, IntegrityError, isTagFailure, TokenError, TokenUnavailableError } from '../src/pkcs11/errors.js';

const FATAL = [
  'CKR_PIN_INCORRECT',
  'CKR_PIN_LOCKED',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_INVALID',
  'CKR_ARGUMENTS_BAD',
  'CKR_MECHANISM_INVALID',
  'CKR_MECHANISM_PARAM_INVALID',
  'CKR_KEY_TYPE_INCONSISTENT',
  'CKR_TEMPLATE_INCONSISTENT',
  'CKR_TEMPLATE_INCOMPLETE',
  'CKR_ATTRIBUTE_VALUE_INVALID',
  'CKR_ATTRIBUTE_TYPE_INVALID',
  'CKR_ATTRIBUTE_SENSITIVE',
  'CKR_KEY_UNEXTRACTABLE',
  'CKR_KEY_FUNCTION_NOT_PERMITTED',
  'CKR_DATA_LEN_RANGE',
  'CKR_WRAPPED_KEY_INVALID',
  'CKR_WRAPPED_KEY_LEN_RANGE',
  'CKR_FUNCTION_NOT_SUPPORTED',
];
const LIBRARY = ['CKR_CRYPTOKI_NOT_INITIALIZED', 'CKR_GENERAL_ERROR', 'CKR_DEVICE_ERROR', 'CKR_DEVICE_REMOVED'];
const SESSION = ['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_OBJECT_HANDLE_INVALID', 'CKR_USER_NOT_LOGGED_IN', 'CKR_OPERATION_ACTIVE', 'CKR_0x80000001'];

const err = (ckr: string) => new TokenError(ckr, 0, 'C_Test');

describe('PKCS#11 error mapping', () => {
  it.each(FATAL)('%s is fatal: retrying cannot help or would lock the PIN', (ckr) => {
    expect(failureRung(err(ckr))).toBe('fatal');
  });

  it.each(LIBRARY)('%s re-initializes the module', (ckr) => {
    expect(failureRung(err(ckr))).toBe('library');
  });

  it.each(SESSION)('%s only needs a new session', (ckr) => {
    expect(failureRung(err(ckr))).toBe('session');
  });

  it('reads a tag failure in the three ways modules report it, and nothing else', () => {
    for (const ckr of ['CKR_GENERAL_ERROR', 'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE']) expect(isTagFailure(err(ckr)), ckr).toBe(true);
    for (const ckr of ['CKR_DEVICE_ERROR', 'CKR_SESSION_HANDLE_INVALID', 'CKR_DATA_LEN_RANGE']) expect(isTagFailure(err(ckr)), ckr).toBe(false);
  });

  it('takes the CKR name and code from a pkcs11js error', () => {
    const te = asTokenError(new pkcs11js.Pkcs11Error('CKR_SESSION_HANDLE_INVALID:179', 0xb3, 'C_Encrypt'), 'C_Encrypt');
    expect(te).toBeInstanceOf(TokenError);
    expect([te.ckr, te.code, te.fn]).toEqual(['CKR_SESSION_HANDLE_INVALID', 0xb3, 'C_Encrypt']);
    expect(te.message).toBe('PKCS#11 C_Encrypt failed: CKR_SESSION_HANDLE_INVALID');
    expect(te.name).toBe('TokenError');
  });

  it('names the function pkcs11js says failed, not the step that made it', () => {
    // An import's step is C_CreateObject, but the wrap that follows it is what a module without key wrap refuses.
    const te = asTokenError(new pkcs11js.Pkcs11Error('CKR_MECHANISM_INVALID:112', 0x70, 'C_WrapKey'), 'C_CreateObject');
    expect([te.ckr, te.fn, te.message]).toEqual(['CKR_MECHANISM_INVALID', 'C_WrapKey', 'PKCS#11 C_WrapKey failed: CKR_MECHANISM_INVALID']);
    expect(asTokenError(new pkcs11js.Pkcs11Error('CKR_DEVICE_ERROR:48', 0x30), 'C_Encrypt').fn).toBe('C_Encrypt');
  });

  it('names a code the module left unnamed in hex', () => {
    const te = asTokenError(new pkcs11js.Pkcs11Error('vendor failure', 0x80000001, 'C_Decrypt'), 'C_Decrypt');
    expect([te.ckr, te.code]).toEqual(['CKR_0x80000001', 0x80000001]);
  });

  it('takes the CKR name from a plain error that carries one, with no code', () => {
    const te = asTokenError(new Error('module said CKR_DEVICE_REMOVED here'), 'connect');
    expect([te.ckr, te.code, te.fn]).toEqual(['CKR_DEVICE_REMOVED', -1, 'connect']);
  });

  it('passes a TokenError through and rethrows anything that is not a PKCS#11 failure', () => {
    const te = err('CKR_DEVICE_ERROR');
    expect(asTokenError(te, 'other')).toBe(te);
    const plain = new Error('disk full');
    expect(() => asTokenError(plain, 'C_Test')).toThrow(plain);
  });

  it('words the errors callers show', () => {
    const unavailable = new TokenUnavailableError('no session');
    expect([unavailable.name, unavailable.message]).toEqual(['TokenUnavailableError', 'HSM token unavailable: no session']);
    const integrity = new IntegrityError('value at "a"');
    expect([integrity.name, integrity.message]).toEqual(['IntegrityError', 'integrity check failed: value at "a"']);
  });
});
