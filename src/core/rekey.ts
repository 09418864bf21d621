import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type * as openpgp from 'openpgp';
import { type BarrierOp, REKEY_PENDING_PATH, type TokenBarrier } from '../barrier/barrier.js';
import { SealedError } from '../barrier/errors.js';
import type { Token, TokenKey } from '../pkcs11/token.js';
import { newRootKey, sharesRebuild } from './quorum.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import { fingerprintOf, readPublicKeys } from './pgp.js';
import { SEAL_CONFIG_PATH, type SealConfig, shareLength, validatePgpKeyCount, validateShareCounts } from './seal-config.js';
import { decodeShare, ShareCollector } from './shares.js';

export const REKEY_BACKUP_PATH = 'core/rekey-backup';
/** In a cluster, the rekey in progress on the active node, so a node taking over can report it cancelled. */
export const REKEY_OPERATION_PATH = 'core/rekey-operation';

export interface RekeyRequest {
  secretShares: number;
  secretThreshold: number;
  pgpKeys: string[];
  backup: boolean;
  requireVerification: boolean;
}

/** GET sys/rekey/init, in Vault's field names. `t`/`n` describe the new shares; `required` the current threshold. */
export interface RekeyStatus {
  nonce: string;
  started: boolean;
  t: number;
  n: number;
  progress: number;
  required: number;
  pgp_fingerprints: string[] | null;
  backup: boolean;
  verification_required: boolean;
  verification_nonce?: string;
  /** keyward: the new shares were handed out but the switch to them is not done yet (see PendingRekey). */
  completion_pending?: boolean;
}

export interface RekeyResult {
  complete: true;
  nonce: string;
  keys: string[];
  keys_base64: string[];
  pgp_fingerprints: string[] | null;
  backup: boolean;
  verification_required: boolean;
  verification_nonce?: string;
}

export interface VerifyStatus {
  nonce: string;
  started: boolean;
  t: number;
  n: number;
  progress: number;
}

export interface BackupRecord {
  nonce: string;
  keys: Record<string, string[]>;
  keys_base64: Record<string, string[]>;
}

/**
 * `core/rekey-pending`, stored in plaintext (unseal reads it while sealed): a rekey whose new
 * shares were (or were about to be) handed out, not yet switched to. The current root key is
 * kept in it encrypted under the new root key, so the new shares alone can open the service and
 * finish the switch; until then the old shares keep working too.
 */
export interface PendingRekey {
  nonce: string;
  config: SealConfig;
  /** The current root key's K-wrapped blob, as a barrier value under the new root key (base64). */
  sealed_root: string;
}

/** A new root key waiting for a threshold of its own shares before the switch (require_verification). */
interface PendingSwitch {
  rootKey: TokenKey;
  config: SealConfig;
  backup: BackupRecord | undefined;
  verificationNonce: string;
  shares: ShareCollector;
}

/** One rekey attempt: its nonce, the new share layout, and the current shares given so far. */
class RekeyOperation {
  readonly nonce = randomUUID();
  readonly shares = new ShareCollector();
  pending: PendingSwitch | undefined;

  constructor(
    readonly request: RekeyRequest,
    readonly pgpKeys: openpgp.PublicKey[],
  ) {}

  get fingerprints(): string[] | null {
    return this.pgpKeys.length ? this.pgpKeys.map(fingerprintOf) : null;
  }
}

export interface RekeyDeps {
  barrier: TokenBarrier;
  token: Token;
  sealConfig(): Promise<SealConfig | undefined>;
  log: Logger;
  /** Record the operation in storage (clusters: the active node may change while it runs). */
  persistOperation?: boolean;
}

/**
 * Rekey: a quorum of the current shares authorizes a new root key and new shares. The switch
 * (keyring re-encrypted under the new root key, `core/root-key`, seal config, optional backup)
 * is one storage transaction; until it, the old shares keep working.
 * Callers serialize calls (Core runs them under its state lock).
 */
export class Rekeyer {
  private op: RekeyOperation | undefined;
  /** A rekey recorded as pending whose reply is on its way: switched to once the reply has left (finishStaged). */
  private staged: { op: RekeyOperation; pending: PendingSwitch } | undefined;
  /** Nonces of operations a failed active node left behind, reported as cancelled. */
  private readonly orphaned = new Set<string>();

  constructor(private readonly deps: RekeyDeps) {}

  /**
   * On becoming active: a rekey recorded by a previous active node cannot go on (its progress
   * and any new root key died with it), so it is removed and later calls with its nonce are told so.
   */
  async cancelOrphaned(): Promise<string | undefined> {
    const raw = await this.deps.barrier.get(REKEY_OPERATION_PATH);
    if (!raw) return undefined;
    const { nonce } = JSON.parse(raw.toString('utf8')) as { nonce: string };
    await this.deps.barrier.delete(REKEY_OPERATION_PATH);
    this.orphaned.add(nonce);
    this.deps.log.warn({ nonce }, 'rekey cancelled: the active node that ran it is gone; start a new rekey');
    return nonce;
  }

  async status(): Promise<RekeyStatus> {
    const current = await this.currentConfig();
    const recorded = await this.pendingRecord();
    if (!this.op && recorded) {
      return {
        nonce: recorded.nonce,
        started: true,
        t: recorded.config.secret_threshold,
        n: recorded.config.secret_shares,
        progress: 0,
        required: current.secret_threshold,
        pgp_fingerprints: null,
        backup: false,
        verification_required: false,
        completion_pending: true,
      };
    }
    const op = this.op;
    const status: RekeyStatus = {
      nonce: op?.nonce ?? '',
      started: op !== undefined,
      t: op?.request.secretThreshold ?? 0,
      n: op?.request.secretShares ?? 0,
      progress: op?.shares.progress ?? 0,
      required: current.secret_threshold,
      pgp_fingerprints: op?.fingerprints ?? null,
      backup: op?.request.backup ?? false,
      verification_required: op?.request.requireVerification ?? false,
    };
    if (op?.pending) status.verification_nonce = op.pending.verificationNonce;
    return status;
  }

  async start(req: RekeyRequest): Promise<RekeyStatus> {
    await this.currentConfig();
    if (this.op) throw new InvalidRequestError(`rekey already in progress (nonce ${this.op.nonce}); cancel it first`);
    const recorded = await this.pendingRecord();
    if (recorded) throw new InvalidRequestError(awaitingCompletion(recorded));
    validateShareCounts(req.secretShares, req.secretThreshold);
    validatePgpKeyCount(req.pgpKeys.length, req.secretShares);
    if (req.backup && req.pgpKeys.length === 0) throw new InvalidRequestError('cannot request a backup of the new keys without providing PGP keys');
    const keys = await readPublicKeys(req.pgpKeys);
    const op = new RekeyOperation(req, keys);
    if (this.deps.persistOperation) {
      await this.deps.barrier.put(REKEY_OPERATION_PATH, Buffer.from(JSON.stringify({ nonce: op.nonce, started: new Date().toISOString() })));
    }
    this.op = op;
    this.deps.log.info({ nonce: this.op.nonce, shares: req.secretShares, threshold: req.secretThreshold }, 'rekey started');
    return this.status();
  }

  /**
   * Cancels the attempt in memory (idempotent), discarding any new root key not yet switched to.
   * A rekey recorded as pending stays recorded (its new shares may be all someone holds); only
   * discardPending removes it.
   */
  cancel(): void {
    if (this.staged) this.deps.token.releaseKey(this.staged.pending.rootKey);
    this.staged = undefined;
    const op = this.op;
    if (!op) return;
    op.shares.reset();
    if (op.pending) {
      this.deps.token.releaseKey(op.pending.rootKey);
      op.pending.shares.reset();
    }
    this.op = undefined;
    // Best effort: if this node can no longer write, the next active node removes the record.
    if (this.deps.persistOperation) this.deps.barrier.delete(REKEY_OPERATION_PATH).catch(() => undefined);
    this.deps.log.info({ nonce: op.nonce }, 'rekey canceled');
  }

  /**
   * DELETE sys/rekey/init with a rekey awaiting completion: the old shares stay the only ones; the
   * new shares handed out (and their backup) no longer open anything.
   */
  async discardPending(): Promise<void> {
    const recorded = await this.pendingRecord();
    if (!recorded) return;
    const ops: BarrierOp[] = [{ kind: 'delete', path: REKEY_PENDING_PATH }];
    const backup = await this.deps.barrier.get(REKEY_BACKUP_PATH);
    if (backup && (JSON.parse(backup.toString('utf8')) as BackupRecord).nonce === recorded.nonce) ops.push({ kind: 'delete', path: REKEY_BACKUP_PATH });
    await this.deps.barrier.transaction(ops);
    this.deps.log.warn({ nonce: recorded.nonce }, 'pending rekey discarded: the old shares stay in use');
  }

  /** The rekey recorded as awaiting completion, if any (readable while sealed). */
  async pendingRecord(): Promise<PendingRekey | undefined> {
    const raw = await this.deps.barrier.get(REKEY_PENDING_PATH);
    return raw && (JSON.parse(raw.toString('utf8')) as PendingRekey);
  }

  /**
   * Switches to the staged rekey `nonce` once its reply has left: until then the new shares may
   * reach no one. A failure leaves it recorded as pending (an unseal with the new shares finishes it).
   */
  async finishStaged(nonce: string): Promise<void> {
    const staged = this.staged;
    if (!staged || staged.op.nonce !== nonce) return;
    this.staged = undefined;
    await this.switchTo(staged.op, staged.pending, true);
  }

  /**
   * An unseal with the new shares of a pending rekey: `newRoot` becomes the root key (the barrier
   * must be unsealed with the one the record sealed). Runs on the active node.
   */
  async completePending(newRoot: TokenKey, recorded: PendingRekey): Promise<void> {
    await this.deps.barrier.rekey(newRoot, this.switchOps(recorded.config, undefined, true));
    this.deps.log.info({ nonce: recorded.nonce, shares: recorded.config.secret_shares, threshold: recorded.config.secret_threshold }, 'rekey completed by an unseal with the new shares');
  }

  /** Takes one current share; at the threshold makes the new root key and shares (and switches unless verification is required). */
  async update(key: unknown, nonce: unknown): Promise<RekeyStatus | RekeyResult> {
    const current = await this.currentConfig();
    const op = this.requireOperation(nonce);
    if (op.pending) {
      throw new InvalidRequestError(
        `rekey already completed; give a threshold of the new shares to sys/rekey/verify (verification nonce ${op.pending.verificationNonce})`,
      );
    }
    const share = decodeShare(key, shareLength(current));
    if (!op.shares.add(share)) throw new InvalidRequestError('given key has already been provided during this rekey operation');
    if (op.shares.progress < current.secret_threshold) return this.status();

    const authorized = sharesRebuild(this.deps.token, op.shares.take(), 'rekey', (k) => this.deps.barrier.isRootKey(k));
    if (!authorized) {
      throw new InvalidRequestError(
        `rekey failed: the ${current.secret_threshold} shares given do not rebuild the current root key; progress has been reset and the rekey (nonce ${op.nonce}) is still open`,
      );
    }
    return this.makeNewRoot(op);
  }

  verifyStatus(): VerifyStatus {
    const op = this.op;
    const pending = op?.pending;
    if (!op || !pending) throw new InvalidRequestError('no rekey verification in progress');
    return {
      nonce: pending.verificationNonce,
      started: true,
      t: pending.config.secret_threshold,
      n: pending.config.secret_shares,
      progress: pending.shares.progress,
    };
  }

  /** Takes one new share; at the threshold checks they rebuild the new root key, then switches. */
  async verify(key: unknown, nonce: unknown): Promise<VerifyStatus | { nonce: string; complete: true }> {
    const op = this.op;
    const pending = op?.pending;
    if (!op || !pending) throw new InvalidRequestError('no rekey verification in progress');
    if (nonce !== pending.verificationNonce) throw new InvalidRequestError('incorrect verification nonce');
    const share = decodeShare(key, shareLength(pending.config));
    if (!pending.shares.add(share)) throw new InvalidRequestError('given key has already been provided during this verification operation');
    if (pending.shares.progress < pending.config.secret_threshold) return this.verifyStatus();

    const matches = sharesRebuild(
      this.deps.token,
      pending.shares.take(),
      'verification',
      (k) => this.deps.token.sameKey(k, pending.rootKey),
      () => this.freshVerificationNonce(pending),
    );
    if (!matches) {
      const fresh = this.freshVerificationNonce(pending);
      throw new InvalidRequestError(`rekey verification failed: the shares do not rebuild the new root key; start again with the new verification nonce ${fresh}`);
    }
    const verifiedNonce = pending.verificationNonce;
    await this.switchTo(op, pending, false);
    return { nonce: verifiedNonce, complete: true };
  }

  /** DELETE sys/rekey/verify: forgets the new shares given so far, under a new verification nonce. */
  verifyCancel(): VerifyStatus {
    const pending = this.op?.pending;
    if (!pending) throw new InvalidRequestError('no rekey verification in progress');
    this.freshVerificationNonce(pending);
    return this.verifyStatus();
  }

  async readBackup(): Promise<BackupRecord> {
    const raw = await this.deps.barrier.get(REKEY_BACKUP_PATH);
    if (!raw) throw new NotFoundError('no rekey backup found');
    return JSON.parse(raw.toString('utf8')) as BackupRecord;
  }

  async deleteBackup(): Promise<void> {
    await this.deps.barrier.delete(REKEY_BACKUP_PATH);
  }

  private async makeNewRoot(op: RekeyOperation): Promise<RekeyResult> {
    const { secretShares: n, secretThreshold: t } = op.request;
    const { rootKey, keys: delivered } = await newRootKey(this.deps.token, n, t, op.pgpKeys);
    const fingerprints = op.fingerprints;
    const backup: BackupRecord | undefined =
      op.request.backup && fingerprints
        ? {
            nonce: op.nonce,
            keys: Object.fromEntries(fingerprints.map((fp, i) => [fp, [delivered[i]!.toString('hex')]])),
            keys_base64: Object.fromEntries(fingerprints.map((fp, i) => [fp, [delivered[i]!.toString('base64')]])),
          }
        : undefined;
    const result: RekeyResult = {
      complete: true,
      nonce: op.nonce,
      keys: delivered.map((k) => k.toString('hex')),
      keys_base64: delivered.map((k) => k.toString('base64')),
      pgp_fingerprints: fingerprints,
      backup: backup !== undefined,
      verification_required: op.request.requireVerification,
    };
    for (const k of delivered) k.fill(0);
    const pending: PendingSwitch = {
      rootKey,
      config: { type: 'shamir', secret_shares: n, secret_threshold: t },
      backup,
      verificationNonce: randomUUID(),
      shares: new ShareCollector(),
    };
    if (op.request.requireVerification) {
      op.pending = pending;
      result.verification_nonce = pending.verificationNonce;
      this.deps.log.info({ nonce: op.nonce }, 'rekey awaiting verification with the new shares');
      return result;
    }
    await this.stage(op, pending);
    return result;
  }

  /**
   * Records the rekey as pending, with its backup, in one transaction: from here the new shares
   * open the service (and finish the switch) as well as the old ones, whether the reply carrying
   * them arrives or not. The switch itself waits for the reply (finishStaged).
   */
  private async stage(op: RekeyOperation, pending: PendingSwitch): Promise<void> {
    const record: PendingRekey = { nonce: op.nonce, config: pending.config, sealed_root: this.deps.barrier.sealCurrentRootFor(pending.rootKey).toString('base64') };
    const ops: BarrierOp[] = [{ kind: 'put', path: REKEY_PENDING_PATH, value: Buffer.from(JSON.stringify(record)) }];
    if (pending.backup) ops.push({ kind: 'put', path: REKEY_BACKUP_PATH, value: Buffer.from(JSON.stringify(pending.backup)) });
    try {
      await this.deps.barrier.transaction(ops);
    } catch (err) {
      this.deps.token.releaseKey(pending.rootKey);
      this.op = undefined;
      throw err;
    }
    this.op = undefined;
    this.staged = { op, pending };
    this.deps.log.info({ nonce: op.nonce }, 'rekey recorded as pending; switching once the new shares have been sent');
  }

  /** Switches to the new root key: after verification, or once the reply of a rekey recorded as pending has left. */
  private async switchTo(op: RekeyOperation, pending: PendingSwitch, recorded: boolean): Promise<void> {
    try {
      await this.deps.barrier.rekey(pending.rootKey, this.switchOps(pending.config, recorded ? undefined : pending.backup, recorded));
    } catch (err) {
      this.deps.token.releaseKey(pending.rootKey);
      this.op = undefined;
      throw err;
    }
    this.op = undefined;
    this.deps.log.info({ nonce: op.nonce, shares: pending.config.secret_shares, threshold: pending.config.secret_threshold }, 'rekey complete: new root key in use');
  }

  /**
   * What goes with the keyring in the switch's transaction: the new seal config, the backup (a
   * rekey recorded as pending stored its backup with the record), the record's removal.
   */
  private switchOps(config: SealConfig, backup: BackupRecord | undefined, recorded: boolean): BarrierOp[] {
    const ops: BarrierOp[] = [{ kind: 'put', path: SEAL_CONFIG_PATH, value: Buffer.from(JSON.stringify(config)) }];
    if (backup) ops.push({ kind: 'put', path: REKEY_BACKUP_PATH, value: Buffer.from(JSON.stringify(backup)) });
    if (recorded) ops.push({ kind: 'delete', path: REKEY_PENDING_PATH });
    if (this.deps.persistOperation) ops.push({ kind: 'delete', path: REKEY_OPERATION_PATH });
    return ops;
  }

  private freshVerificationNonce(pending: PendingSwitch): string {
    pending.shares.reset();
    pending.verificationNonce = randomUUID();
    return pending.verificationNonce;
  }

  private requireOperation(nonce: unknown): RekeyOperation {
    const op = this.op;
    if (!op && typeof nonce === 'string' && this.orphaned.has(nonce)) {
      throw new InvalidRequestError(`rekey ${nonce} was cancelled: the active node running it failed over to this one; start a new rekey`);
    }
    if (!op) throw new InvalidRequestError('no rekey in progress');
    if (typeof nonce !== 'string' || nonce === '') throw new InvalidRequestError("missing 'nonce': give the nonce of the rekey operation");
    if (nonce !== op.nonce) throw new InvalidRequestError('incorrect nonce');
    return op;
  }

  private async currentConfig(): Promise<SealConfig> {
    if (this.deps.barrier.sealed) throw new SealedError();
    const config = await this.deps.sealConfig();
    if (!config) throw new InvalidRequestError('Vault is not initialized');
    return config;
  }
}

/** What an operator is told while a rekey awaits completion. */
export function awaitingCompletion(recorded: PendingRekey): string {
  const { secret_threshold: t, secret_shares: n } = recorded.config;
  return `rekey ${recorded.nonce} awaits completion: unseal with ${t} of its ${n} new shares to finish it, or cancel it (DELETE sys/rekey/init) to keep the current shares`;
}
