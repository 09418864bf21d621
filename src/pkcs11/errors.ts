import pkcs11js from 'pkcs11js';

/** A failed PKCS#11 call, carrying the CKR name so operators can look it up in their HSM's manual. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly ckr: string,
    readonly code: number,
    readonly fn: string,
  ) {
    super(`PKCS#11 ${fn} failed: ${ckr}`);
  }
}

/** The token could not be reached even after the recovery ladder; callers answer 503. */
export class TokenUnavailableError extends Error {
  override readonly name = 'TokenUnavailableError';
  constructor(reason: string) {
    super(`HSM token unavailable: ${reason}`);
  }
}

/** A GCM tag did not verify: the value was altered, moved to another path, or encrypted under another key. */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
  constructor(what: string) {
    super(`integrity check failed: ${what}`);
  }
}

/**
 * Converts whatever pkcs11js threw into a TokenError (or rethrows a non-PKCS#11 failure). It names
 * the function pkcs11js reports as failed, when it does, rather than `fn`, the step's name: a step
 * makes several calls, and the operator looks up the one that failed.
 */
export function asTokenError(err: unknown, fn: string): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof pkcs11js.Pkcs11Error) {
    const ckr = /CKR_[A-Z_0-9]+/.exec(err.message)?.[0] ?? `CKR_0x${err.code.toString(16)}`;
    const method = (err as { method?: unknown }).method;
    return new TokenError(ckr, err.code, typeof method === 'string' && method.startsWith('C_') ? method : fn);
  }
  if (err instanceof Error && /CKR_[A-Z_0-9]+/.test(err.message)) {
    const ckr = /CKR_[A-Z_0-9]+/.exec(err.message)![0];
    return new TokenError(ckr, -1, fn);
  }
  throw err;
}

/**
 * How far up the recovery ladder (PKCS11-NOTES) a failure must go.
 * - `fatal`: retrying cannot help or would do harm (a wrong PIN locks real HSMs).
 * - `session`: open a new session, log in, re-find keys.
 * - `library`: finalize and re-initialize the module first.
 */
export type FailureRung = 'fatal' | 'session' | 'library';

const FATAL = new Set([
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
  // What a key or an input cannot do (transit's keys): a new session would not change the answer.
  'CKR_KEY_SIZE_RANGE',
  'CKR_KEY_NOT_WRAPPABLE',
  'CKR_SIGNATURE_INVALID',
  'CKR_SIGNATURE_LEN_RANGE',
]);

const LIBRARY = new Set(['CKR_CRYPTOKI_NOT_INITIALIZED', 'CKR_GENERAL_ERROR', 'CKR_DEVICE_ERROR', 'CKR_DEVICE_REMOVED']);

export function failureRung(err: TokenError): FailureRung {
  if (FATAL.has(err.ckr)) return 'fatal';
  if (LIBRARY.has(err.ckr)) return 'library';
  return 'session';
}

/** C_Decrypt results that mean "the tag did not verify" (SoftHSM reports GENERAL_ERROR). */
export function isTagFailure(err: TokenError): boolean {
  return (
    err.ckr === 'CKR_GENERAL_ERROR' ||
    err.ckr === 'CKR_ENCRYPTED_DATA_INVALID' ||
    err.ckr === 'CKR_ENCRYPTED_DATA_LEN_RANGE'
  );
}
