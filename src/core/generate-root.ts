import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type * as openpgp from 'openpgp';
import * as pgp from 'openpgp';
import type { TokenBarrier } from '../barrier/barrier.js';
import { SealedError } from '../barrier/errors.js';
import { randomBase62 } from '../crypto/base62.js';
import type { Token } from '../pkcs11/token.js';
import { InvalidRequestError } from './errors.js';
import { fingerprintOf, readPublicKeys } from './pgp.js';
import { sharesRebuild } from './quorum.js';
import { type SealConfig, shareLength } from './seal-config.js';
import { decodeShare, ShareCollector } from './shares.js';
import { newTokenId, type TokenStore } from './token-store.js';

/** Length of keyward's tokens ("hvs." and 24 characters), and so of the one-time pad. */
export const OTP_LENGTH = 28;

/** GET sys/generate-root/attempt, in Vault's field names. */
export interface GenerateRootStatus {
  started: boolean;
  nonce: string;
  progress: number;
  required: number;
  complete: boolean;
  encoded_token: string;
  encoded_root_token: string;
  pgp_fingerprint: string;
  otp: string;
  otp_length: number;
}

/** Vault's OTP scheme: the token XOR a one-time pad of the same length, base64-encoded. */
export function encodeWithOtp(token: string, otp: string): string {
  const t = Buffer.from(token);
  const o = Buffer.from(otp);
  if (t.length !== o.length) throw new InvalidRequestError(`the OTP must be ${t.length} bytes long, not ${o.length}`);
  return Buffer.from(t.map((b, i) => b ^ o[i]!)).toString('base64');
}

export function decodeWithOtp(encoded: string, otp: string): string {
  const e = Buffer.from(encoded, 'base64');
  const o = Buffer.from(otp);
  if (e.length !== o.length) throw new InvalidRequestError(`the OTP (${o.length} characters) does not match the encoded token (${e.length} bytes)`);
  return Buffer.from(e.map((b, i) => b ^ o[i]!)).toString('utf8');
}

export function generateOtp(): string {
  return randomBase62(OTP_LENGTH);
}

/**
 * Refuses an OTP that could not pad a token: it is XORed byte by byte with the token's UTF-8, so
 * its length counts in bytes, and only base62 (as generateOtp and randomBase62 make, one byte a
 * character) keeps bytes and characters the same.
 */
export function checkOtp(otp: string): void {
  // Checked first: a non-ASCII OTP can have the right number of UTF-16 units and the wrong number of bytes.
  if (!/^[\x00-\x7f]*$/.test(otp)) throw new InvalidRequestError(`the OTP must be ${OTP_LENGTH} base62 characters (0-9, A-Z, a-z); it has non-ASCII characters`);
  if (!/^[0-9A-Za-z]*$/.test(otp)) throw new InvalidRequestError(`the OTP must be ${OTP_LENGTH} base62 characters (0-9, A-Z, a-z); it has other characters`);
  if (otp.length !== OTP_LENGTH) throw new InvalidRequestError(`the OTP must be ${OTP_LENGTH} base62 characters (0-9, A-Z, a-z), not ${otp.length}`);
}

interface Attempt {
  nonce: string;
  shares: ShareCollector;
  otp: string;
  pgpKey: openpgp.PublicKey | undefined;
}

export interface GenerateRootDeps {
  barrier: TokenBarrier;
  token: Token;
  tokens: TokenStore;
  sealConfig(): Promise<SealConfig | undefined>;
  log: Logger;
}

/**
 * generate-root: a quorum of shares mints a new root token, handed out XORed with a one-time
 * pad (or encrypted to a PGP key), so it never crosses the wire in the clear. Callers serialize.
 */
export class RootGenerator {
  private attempt: Attempt | undefined;

  constructor(private readonly deps: GenerateRootDeps) {}

  async status(): Promise<GenerateRootStatus> {
    const config = await this.currentConfig();
    const a = this.attempt;
    return {
      started: a !== undefined,
      nonce: a?.nonce ?? '',
      progress: a?.shares.progress ?? 0,
      required: config.secret_threshold,
      complete: false,
      encoded_token: '',
      encoded_root_token: '',
      pgp_fingerprint: a?.pgpKey ? fingerprintOf(a.pgpKey) : '',
      otp: '',
      otp_length: OTP_LENGTH,
    };
  }

  /** Starts an attempt; without a PGP key the server makes the OTP and returns it (once). */
  async start(pgpKey: string | undefined, otp: string | undefined): Promise<GenerateRootStatus> {
    await this.currentConfig();
    if (this.attempt) throw new InvalidRequestError(`root generation already in progress (nonce ${this.attempt.nonce}); cancel it first`);
    if (pgpKey && otp) throw new InvalidRequestError('give either pgp_key or otp, not both');
    if (otp !== undefined) checkOtp(otp);
    const key = pgpKey ? await encryptionKey(pgpKey) : undefined;
    const attempt: Attempt = { nonce: randomUUID(), shares: new ShareCollector(), otp: key ? '' : (otp ?? generateOtp()), pgpKey: key };
    this.attempt = attempt;
    this.deps.log.info({ nonce: attempt.nonce }, 'root token generation started');
    // The server-made OTP is shown only in this reply.
    return { ...(await this.status()), otp: key || otp ? '' : attempt.otp };
  }

  cancel(): void {
    this.attempt?.shares.reset();
    this.attempt = undefined;
  }

  async update(key: unknown, nonce: unknown): Promise<GenerateRootStatus> {
    const config = await this.currentConfig();
    const a = this.attempt;
    if (!a) throw new InvalidRequestError('no root generation in progress');
    if (nonce !== a.nonce) throw new InvalidRequestError('incorrect nonce');
    const share = decodeShare(key, shareLength(config));
    if (!a.shares.add(share)) throw new InvalidRequestError('given key has already been provided during this generation operation');
    if (a.shares.progress < config.secret_threshold) return this.status();

    const ok = sharesRebuild(this.deps.token, a.shares.take(), 'root generation', (k) => this.deps.barrier.isRootKey(k));
    if (!ok) {
      throw new InvalidRequestError(`root generation failed: the shares do not rebuild the current root key; progress has been reset and the attempt (nonce ${a.nonce}) is still open`);
    }
    // The token is encoded before it is stored: a token whose reply cannot be made would be a
    // root token nobody holds. When encoding fails the attempt ends, as its key or OTP cannot change.
    const token = newTokenId();
    let encoded: string;
    try {
      encoded = await encodeToken(token, a);
    } catch (err) {
      this.cancel();
      const how = a.pgpKey ? "encrypted to the attempt's PGP key" : "XORed with the attempt's OTP";
      throw new InvalidRequestError(`root generation failed: the new root token cannot be ${how} (${(err as Error).message}); no token was created and the attempt (nonce ${a.nonce}) is canceled`);
    }
    await this.deps.tokens.createRoot(token);
    const status = await this.status();
    this.attempt = undefined;
    this.deps.log.info({ nonce: a.nonce }, 'root token generated');
    return { ...status, started: true, progress: config.secret_threshold, complete: true, encoded_token: encoded, encoded_root_token: encoded };
  }

  private async currentConfig(): Promise<SealConfig> {
    if (this.deps.barrier.sealed) throw new SealedError();
    const config = await this.deps.sealConfig();
    if (!config) throw new InvalidRequestError('Vault is not initialized');
    return config;
  }
}

/** The token as the reply carries it: encrypted to the attempt's PGP key, or XORed with its OTP. */
async function encodeToken(token: string, a: Attempt): Promise<string> {
  if (!a.pgpKey) return encodeWithOtp(token, a.otp);
  const message = await pgp.createMessage({ text: token });
  return Buffer.from(await pgp.encrypt({ message, encryptionKeys: a.pgpKey, format: 'binary' })).toString('base64');
}

/** The attempt's PGP key, refused up front when it has no key that can encrypt (a signing-only or expired key). */
async function encryptionKey(encoded: string): Promise<openpgp.PublicKey> {
  const key = (await readPublicKeys([encoded]))[0]!;
  try {
    await key.getEncryptionKey();
  } catch (err) {
    throw new InvalidRequestError(`pgp_key cannot encrypt: ${(err as Error).message}`);
  }
  return key;
}
