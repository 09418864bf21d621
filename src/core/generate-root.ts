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
import type { TokenStore } from './token-store.js';

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
  if (t.length !== o.length) throw new InvalidRequestError(`the OTP must be ${t.length} characters long`);
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
    if (otp !== undefined && otp.length !== OTP_LENGTH) throw new InvalidRequestError(`the OTP must be ${OTP_LENGTH} characters long`);
    const key = pgpKey ? (await readPublicKeys([pgpKey]))[0] : undefined;
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
    const token = await this.deps.tokens.createRoot();
    const encoded = a.pgpKey
      ? Buffer.from(
          await pgp.encrypt({ message: await pgp.createMessage({ text: token }), encryptionKeys: a.pgpKey, format: 'binary' }),
        ).toString('base64')
      : encodeWithOtp(token, a.otp);
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
