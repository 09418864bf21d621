// JWT signature and claim checks for the jwt auth method, with jose doing the JOSE work. Vault's
// rules that jose has no option for (separate expiry and not-before leeways, a token without
// `exp` living five minutes from its start) are applied to the verified claims here.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, customFetch, type FetchImplementation, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { InvalidRequestError } from '../core/errors.js';
import { parseCertificates } from './cert-chain.js';

/** The asymmetric algorithms Vault's jwt_supported_algs takes. */
export const SUPPORTED_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'EdDSA'];
/** Vault's lifetime for a token that states when it starts but not when it ends. */
const LIFETIME_WITHOUT_EXP = 300;
const JWKS_TIMEOUT_MS = 5000;

/** Where the verification keys come from: exactly one of PEM public keys or a JWKS URL. */
export interface JwtKeySource {
  jwtValidationPubkeys: string[];
  jwksUrl: string;
  /** CA certificates (PEM) for the JWKS URL's TLS; empty: the system's. */
  jwksCaPem: string;
}

/** The keys a config names, parsed once: PEM keys as KeyObjects, a JWKS URL as jose's caching remote key set. */
export class JwtKeys {
  private constructor(
    readonly pem: KeyObject[],
    readonly remote: (JWTVerifyGetKey & { reload(): Promise<void> }) | undefined,
  ) {}

  /** The keys for `source`; a 400 if a PEM is not a public key or the JWKS URL does not answer with a key set. */
  static async create(source: JwtKeySource): Promise<JwtKeys> {
    if (source.jwksUrl === '') {
      if (source.jwksCaPem !== '') throw new InvalidRequestError('jwks_ca_pem applies only with jwks_url');
      return new JwtKeys(source.jwtValidationPubkeys.map(publicKey), undefined);
    }
    let url: URL;
    try {
      url = new URL(source.jwksUrl);
    } catch {
      throw new InvalidRequestError('jwks_url must be an http or https URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InvalidRequestError('jwks_url must be an http or https URL');
    const options = source.jwksCaPem === '' ? {} : { [customFetch]: await fetchTrusting(source.jwksCaPem) };
    const remote = createRemoteJWKSet(url, { timeoutDuration: JWKS_TIMEOUT_MS, ...options });
    try {
      await remote.reload();
    } catch (err) {
      throw new InvalidRequestError(`error checking jwks_url: ${(err as Error).message}`);
    }
    return new JwtKeys([], remote);
  }
}

export interface JwtExpectations {
  algorithms: string[];
  /** Empty: any issuer. */
  issuer: string;
  /** Empty: any subject. */
  subject: string;
  /** Empty: no audience required (the caller refuses a token that has one, as Vault). */
  audiences: string[];
  /** Milliseconds since the epoch. */
  now: number;
  /** Seconds, already resolved from the role (defaults applied, disabled as 0). */
  clockSkewLeeway: number;
  expirationLeeway: number;
  notBeforeLeeway: number;
}

/** The token's claims once its signature verifies with a configured key and its standard claims meet `expect`; otherwise a 400 that never echoes the token. */
export async function verifyJwt(token: string, keys: JwtKeys, expect: JwtExpectations): Promise<JWTPayload> {
  const options = {
    algorithms: expect.algorithms,
    issuer: expect.issuer || undefined,
    subject: expect.subject || undefined,
    audience: expect.audiences.length > 0 ? expect.audiences : undefined,
    currentDate: new Date(expect.now),
    // jose applies one tolerance to both exp and nbf; the larger of Vault's two lets every token
    // through that Vault's rules (applied below) would accept.
    clockTolerance: expect.clockSkewLeeway + Math.max(expect.expirationLeeway, expect.notBeforeLeeway),
  };
  let payload: JWTPayload | undefined;
  try {
    if (keys.remote) payload = (await jwtVerify(token, keys.remote, options)).payload;
    for (const key of keys.pem) {
      try {
        payload = (await jwtVerify(token, key, options)).payload;
        break;
      } catch (err) {
        // Vault tries each configured key; only a key that does not verify the signature moves on.
        if (!isWrongKey(err)) throw err;
      }
    }
  } catch (err) {
    throw new InvalidRequestError(`error validating token: ${reason(err)}`);
  }
  if (!payload) throw new InvalidRequestError('error validating token: no known key successfully validated the token signature');
  checkTimes(payload, expect);
  return payload;
}

/** Vault's time rules: one of iat/nbf/exp is required; exp and nbf get their own leeways on top of the clock skew. */
function checkTimes(claims: JWTPayload, expect: JwtExpectations): void {
  const now = expect.now / 1000;
  const { iat, nbf: givenNbf, exp: givenExp } = claims;
  if (iat === undefined && givenNbf === undefined && givenExp === undefined) {
    throw new InvalidRequestError('error validating token: no issue time, notbefore, or expiration time encoded in token');
  }
  const exp = givenExp ?? Math.max(iat ?? 0, givenNbf ?? 0) + LIFETIME_WITHOUT_EXP;
  const nbf = givenNbf ?? iat ?? exp - LIFETIME_WITHOUT_EXP;
  if (now > exp + expect.clockSkewLeeway + expect.expirationLeeway) throw new InvalidRequestError('error validating token: token is expired (exp)');
  if (now < nbf - expect.clockSkewLeeway - expect.notBeforeLeeway) throw new InvalidRequestError('error validating token: token is not valid yet (nbf)');
  if (iat !== undefined && now < iat - expect.clockSkewLeeway) throw new InvalidRequestError('error validating token: token issued in the future (iat)');
}

function isWrongKey(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  // The algorithm was allowed before the key was tried: a key of another type than the token's
  // algorithm is "not supported" by jose (or a TypeError from WebCrypto).
  return code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || code === 'ERR_JOSE_NOT_SUPPORTED' || err instanceof TypeError;
}

/** jose's messages name the failed check and never the token's contents; anything else gets a fixed wording. */
function reason(err: unknown): string {
  const code = (err as { code?: string }).code ?? '';
  switch (code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the token\'s signing algorithm ("alg") is not among jwt_supported_algs';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no known key successfully validated the token signature';
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'several keys in the JWKS match the token and none is named by its "kid"';
    case 'ERR_JWT_EXPIRED':
      return 'token is expired (exp)';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return (err as Error).message;
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'the token is not a well-formed signed JWT';
    default:
      return err instanceof TypeError ? 'no known key successfully validated the token signature' : 'the token could not be verified';
  }
}

function publicKey(pem: string): KeyObject {
  // createPublicKey would derive a public key from a private one; a private key must not sit in a readable config.
  if (/PRIVATE KEY-----/.test(pem)) throw new InvalidRequestError('jwt_validation_pubkeys: an entry is a private key; configure the public key only');
  try {
    const key = createPublicKey(pem);
    if (['rsa', 'rsa-pss', 'ec', 'ed25519'].includes(key.asymmetricKeyType ?? '')) return key;
  } catch {
    // Reported below without the input.
  }
  throw new InvalidRequestError('jwt_validation_pubkeys: each entry must be a PEM-encoded RSA, EC or Ed25519 public key');
}

/** A fetch for jose that trusts only the given CA certificates (undici is loaded only when a config needs it). */
async function fetchTrusting(caPem: string): Promise<FetchImplementation> {
  if (!parseCertificates(caPem)) throw new InvalidRequestError('jwks_ca_pem must be one or more PEM-encoded certificates');
  const { Agent, fetch } = await import('undici');
  const dispatcher = new Agent({ connect: { ca: caPem } });
  return async (url, { headers, method, redirect, signal }) => {
    // jose hands over the global fetch's Headers; undici's own fetch takes them as plain pairs.
    const plain = Object.fromEntries(headers as unknown as Iterable<[string, string]>);
    return (await fetch(url, { headers: plain, method, redirect, signal, dispatcher })) as unknown as Response;
  };
}
