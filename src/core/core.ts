import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { TokenBarrier, type BarrierOp } from '../barrier/barrier.js';
import { BarrierView } from '../barrier/view.js';
import { IntegrityError } from '../pkcs11/errors.js';
import type { Token, TokenDescription } from '../pkcs11/token.js';
import type { StorageBackend } from '../storage/backend.js';
import { VERSION } from '../version.js';
import { InvalidRequestError, NotInitializedError, PermissionDeniedError } from './errors.js';
import { MountTable, type MountTtls } from './mounts.js';
import { Mutex } from '../locks/mutex.js';
import { Metrics } from './metrics.js';
import { readPublicKeys } from './pgp.js';
import { AuditBroker } from './audit.js';
import { RootGenerator } from './generate-root.js';
import { newRootKey, rebuildKey } from './quorum.js';
import { type PendingRekey, Rekeyer } from './rekey.js';
import { RewrapJob } from './rewrap.js';
import { RotationScheduler, updateRotationConfig } from './rotation.js';
import { LogicalRouter } from './router.js';
import { parseSealConfig, SEAL_CONFIG_PATH, type SealConfig, shareLength, validatePgpKeyCount, validateShareCounts } from './seal-config.js';
import { decodeShareOfAny, ShareCollector } from './shares.js';
import { DEFAULT_TOKEN_TTL, type TokenEntry, TokenStore, type TokenTtls } from './token-store.js';
import { PolicyStore } from './policy-store.js';
import type { Capability } from './policy.js';
import { HaCoordinator, type HaDuties, type HaSettings, type LeaderStatus, noLeaderStatus } from './ha.js';
import { MOUNTS_PATH } from './mounts.js';
import { UPGRADE_PREFIX } from '../barrier/upgrade.js';
import { INIT_PENDING_PATH, KEYRING_PATH, ROOT_KEY_PATH } from '../barrier/barrier.js';
import type { TokenKey } from '../pkcs11/token.js';
import { AUDIT_TABLE_PATH } from './audit.js';
import { CubbyholeStore } from './cubbyhole.js';
import { ResponseWrapper } from './wrapping.js';
import { AUTH_TABLE_PATH, AuthMethods, AuthTable, type DisableSteps } from './auth-mounts.js';

const CLUSTER_PATH = 'core/cluster';
/** How often the active node deletes the cubbyholes of expired tokens. */
const CUBBYHOLE_SWEEP_MS = 60_000;

export interface CoreOptions {
  storage: StorageBackend;
  token: Token;
  /** Create the seal key in the token at init when it does not exist. */
  generateKey: boolean;
  log: Logger;
  /** How often encryption counts are written back with the keyring (ms). */
  countPersistMs?: number;
  /** How often automatic rotation is considered (ms). */
  rotationCheckMs?: number;
  /** Clock for interval-based rotation (ms since the epoch); injectable for tests. */
  now?: () => number;
  /** Rewrap throttling: entries per second (0 = no limit) and entries in flight. */
  rewrapMaxRate?: number;
  rewrapConcurrency?: number;
  /** Active/standby over a shared storage (PostgreSQL with ha_enabled). */
  ha?: HaSettings;
  /** Token lifetimes (`default_lease_ttl`, `max_lease_ttl`); Vault's 768h each when not given. */
  tokenTtls?: TokenTtls;
  /**
   * Test-only (KEYWARD_TEST_CRASH_AFTER_REPLY_FILE, never from config): while this file exists the
   * process SIGKILLs itself once a reply has left, before the work that follows it (confirming an
   * init, switching to a rekey's new shares).
   */
  crashAfterReplyFile?: string;
}

export interface TermStatus {
  term: number;
  install_time: string;
  encryptions: number;
  values: number;
  active: boolean;
}

export interface SealStatus {
  type: 'shamir';
  initialized: boolean;
  sealed: boolean;
  t: number;
  n: number;
  progress: number;
  nonce: string;
  version: string;
  migration: boolean;
  recovery_seal: boolean;
  storage_type: string;
  cluster_name?: string;
  cluster_id?: string;
  /** keyward: an init whose shares may not have reached anyone; `t`/`n` are its. Unseal with them confirms it, init again replaces it. */
  init_pending?: boolean;
  /** keyward: a rekey whose new shares were handed out but not yet switched to; either set of shares unseals. */
  rekey_pending?: { nonce: string; t: number; n: number };
}

export interface InitResult {
  keys: Buffer[];
  rootToken: string;
}

/** A layout an unseal may open: the current one, an init awaiting confirmation, or a pending rekey. */
interface UnsealCandidate {
  config: SealConfig;
  kind: 'current' | 'init' | 'rekey';
  rekey?: PendingRekey;
}

interface ClusterInfo {
  cluster_name: string;
  cluster_id: string;
}

/**
 * The state machine: initialize, unseal with a quorum of shares, seal. Every state change
 * runs under one mutex so concurrent operators cannot interleave half-done transitions.
 */
export class Core {
  readonly barrier: TokenBarrier;
  readonly tokens: TokenStore;
  readonly policies: PolicyStore;
  readonly mounts: MountTable;
  readonly router: LogicalRouter;
  /** Auth methods (sys/auth) and the method instances serving auth/<path>/. */
  readonly auth: AuthTable;
  readonly authMethods: AuthMethods;
  readonly rekey: Rekeyer;
  readonly generateRoot: RootGenerator;
  readonly rewrap: RewrapJob;
  readonly metrics = new Metrics();
  readonly audit: AuditBroker;
  /** Each token's private store (cubbyhole/), where wrapped replies are kept too. */
  readonly cubbyholes: CubbyholeStore;
  readonly wrapping: ResponseWrapper;
  /** Names this node in the X-Keyward-Node header and sys/leader (set once the listener is up). */
  nodeId = '';
  /** Present in a cluster: this node's role and the leader lease. */
  readonly ha: HaCoordinator | undefined;
  private readonly rotation: RotationScheduler;
  private readonly storage: StorageBackend;
  private readonly token: Token;
  private readonly log: Logger;
  private readonly stateLock = new Mutex();
  private readonly unsealShares = new ShareCollector();
  private unsealNonce = '';
  private cluster: ClusterInfo | undefined;
  private countTimer: NodeJS.Timeout | undefined;
  private cubbyholeTimer: NodeJS.Timeout | undefined;
  /** Work that follows a reply (confirming an init, switching to a rekey's new shares): reads of the seal state wait for it. */
  private afterReply: Promise<void> = Promise.resolve();
  /** The new root key of a pending rekey this node was unsealed with: it finishes the switch when active. */
  private pendingRekeyRoot: { key: TokenKey; rekey: PendingRekey } | undefined;

  constructor(private readonly opts: CoreOptions) {
    this.storage = opts.storage;
    this.token = opts.token;
    this.log = opts.log;
    this.barrier = new TokenBarrier(opts.storage, opts.token, { upgradeEntries: opts.ha !== undefined, now: opts.now });
    this.tokens = new TokenStore(this.barrier, opts.now, opts.tokenTtls);
    this.policies = new PolicyStore(this.barrier);
    this.mounts = new MountTable(this.barrier);
    // Engines go through the mount table's barrier, so a KV upgrade can hold requests off a mount.
    // Date.now is looked up at each call, so tests that fake Date move the engines' clock too.
    this.router = new LogicalRouter(this.mounts.engineBarrier, this.mounts, { token: opts.token, now: opts.now ?? (() => Date.now()) });
    this.auth = new AuthTable(this.barrier);
    this.authMethods = new AuthMethods(this.barrier, this.auth, { now: opts.now ?? (() => Date.now()) });
    this.rekey = new Rekeyer({
      barrier: this.barrier,
      token: this.token,
      sealConfig: () => this.sealConfig(),
      log: this.log,
      persistOperation: opts.ha !== undefined,
    });
    this.audit = new AuditBroker(this.barrier);
    this.cubbyholes = new CubbyholeStore(this.barrier);
    this.wrapping = new ResponseWrapper(this.tokens, this.cubbyholes);
    // A revoked token's cubbyhole (a wrapped reply, say) goes with it.
    this.tokens.onRevoked = (entry) => this.cubbyholes.destroy(entry.accessor);
    this.generateRoot = new RootGenerator({
      barrier: this.barrier,
      token: this.token,
      tokens: this.tokens,
      sealConfig: () => this.sealConfig(),
      log: this.log,
    });
    this.rotation = new RotationScheduler({
      barrier: this.barrier,
      log: this.log,
      metrics: this.metrics,
      now: opts.now ?? Date.now,
      checkMs: opts.rotationCheckMs ?? 10_000,
    });
    this.rewrap = new RewrapJob({
      barrier: this.barrier,
      log: this.log,
      maxRate: opts.rewrapMaxRate ?? 5000,
      concurrency: opts.rewrapConcurrency ?? 4,
      persistMs: 1000,
    });
    this.ha = opts.ha && new HaCoordinator(opts.ha, this.haDuties(), this.log.child({ component: 'ha' }));
  }

  /** The server's default_lease_ttl and max_lease_ttl (seconds): what a mount tuned to 0 ("system") gets. */
  get systemTtls(): TokenTtls {
    return this.opts.tokenTtls ?? { defaultTtl: DEFAULT_TOKEN_TTL, maxTtl: DEFAULT_TOKEN_TTL };
  }

  /** The PKCS#11 module and token this node uses, for operators (sys/hsm). */
  tokenDescription(): TokenDescription {
    return this.token.describe();
  }

  /** Whether this node is an unsealed standby in a cluster (it then serves reads and passes the rest on). */
  get isStandby(): boolean {
    return this.ha?.isStandby ?? false;
  }

  async leaderStatus(): Promise<LeaderStatus> {
    if (this.ha && !this.sealed) return this.ha.leaderStatus();
    return noLeaderStatus(this.ha !== undefined);
  }

  /** Runs a state change under the core's lock (rekey steps, mounts), so it cannot interleave with seal or unseal. */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.stateLock.run(fn);
  }

  get sealed(): boolean {
    return this.barrier.sealed;
  }

  async sealConfig(): Promise<SealConfig | undefined> {
    const raw = await this.storage.get(SEAL_CONFIG_PATH);
    return raw && parseSealConfig(raw);
  }

  async initialized(): Promise<boolean> {
    await this.afterReply;
    return (await this.sealConfig()) !== undefined;
  }

  /**
   * Runs `fn` under the state lock once a reply has been handed to the socket; a client that
   * asks for the seal state next gets the state after it. A failure is logged: what it would
   * have finished stays pending, for an unseal with the new shares to finish.
   */
  private settleAfterReply(what: string, fn: () => Promise<void>): void {
    if (this.opts.crashAfterReplyFile && existsSync(this.opts.crashAfterReplyFile)) process.kill(process.pid, 'SIGKILL');
    this.afterReply = this.afterReply
      .then(() => this.stateLock.run(fn))
      .catch((err: unknown) => this.log.error({ err }, `${what} after the reply failed; it stays pending until an unseal with the new shares finishes it`));
  }

  /** sys/init's reply has left: the init it made becomes the configuration. */
  confirmInitAfterReply(): void {
    this.settleAfterReply('confirming the init', () => this.confirmPendingInit());
  }

  /** sys/rekey/update's reply with the new shares has left: switch to them. */
  finishRekeyAfterReply(nonce: string): void {
    this.settleAfterReply(`switching to the new shares of rekey ${nonce}`, () => this.rekey.finishStaged(nonce));
  }

  /**
   * Makes the seal key (if allowed), root key and first term; returns the shares (PGP-encrypted
   * when keys are given) and a root token. `secretKvVersion` is the KV version of `secret/` (dev mode: 2).
   */
  init(shares: number, threshold: number, pgpKeys: readonly string[] = [], secretKvVersion: '1' | '2' = '1'): Promise<InitResult> {
    return this.stateLock.run(async () => {
      if (await this.sealConfig()) throw new InvalidRequestError('Vault is already initialized');
      validateShareCounts(shares, threshold);
      validatePgpKeyCount(pgpKeys.length, shares);
      const publicKeys = await readPublicKeys(pgpKeys);
      this.token.ensureSealKey(this.opts.generateKey);
      const { rootKey, keys } = await newRootKey(this.token, shares, threshold, publicKeys);
      const root = TokenStore.initialRoot();
      const config: SealConfig = { type: 'shamir', secret_shares: shares, secret_threshold: threshold };
      const cluster: ClusterInfo = { cluster_name: `keyward-cluster-${randomUUID().slice(0, 8)}`, cluster_id: randomUUID() };
      // The seal config goes in as pending: until the reply with the shares has left (confirmInit),
      // the service counts as uninitialized, and an init that reached no one can be made again.
      const ops: BarrierOp[] = [
        { kind: 'put', path: INIT_PENDING_PATH, value: Buffer.from(JSON.stringify(config)) },
        { kind: 'put', path: CLUSTER_PATH, value: Buffer.from(JSON.stringify(cluster)) },
        ...root.ops,
        ...MountTable.initialOps(secretKvVersion),
        ...AuthTable.initialOps(),
      ];
      const written = new Set([KEYRING_PATH, ROOT_KEY_PATH, ...ops.map((op) => op.path)]);
      const leftovers = (await this.storedKeys('')).filter((key) => !written.has(key) && !key.startsWith('core/lock/'));
      try {
        await this.barrier.initialize(rootKey, [...ops, ...leftovers.map((path): BarrierOp => ({ kind: 'delete', path }))]);
      } finally {
        this.token.releaseKey(rootKey);
      }
      this.log.info({ shares, threshold, replaced: leftovers.length }, 'initialized; confirmed once the shares have been sent');
      return { keys, rootToken: root.token };
    });
  }

  /** Makes a pending init the configuration: its reply, with the shares, has left, or they have just unsealed it. */
  private async confirmPendingInit(): Promise<void> {
    const pending = await this.storage.get(INIT_PENDING_PATH);
    if (!pending || (await this.sealConfig())) return;
    await this.storage.transaction([
      { kind: 'put', key: SEAL_CONFIG_PATH, value: pending },
      { kind: 'delete', key: INIT_PENDING_PATH },
    ]);
    this.log.info('init confirmed');
  }

  /** Every key in storage below `prefix` (an init replacing one that reached no one drops them). */
  private async storedKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for (const child of await this.storage.list(prefix)) {
      if (child.endsWith('/')) keys.push(...(await this.storedKeys(prefix + child)));
      else keys.push(prefix + child);
    }
    return keys;
  }

  async sealStatus(): Promise<SealStatus> {
    await this.afterReply;
    return this.readSealStatus();
  }

  /** The seal status as stored now (under the state lock, where waiting for afterReply would deadlock). */
  private async readSealStatus(): Promise<SealStatus> {
    const current = await this.sealConfig();
    const pendingInit = current ? undefined : await this.pendingInitConfig();
    const config = current ?? pendingInit;
    const status: SealStatus = {
      type: 'shamir',
      initialized: current !== undefined,
      sealed: this.sealed,
      t: config?.secret_threshold ?? 0,
      n: config?.secret_shares ?? 0,
      progress: this.unsealShares.progress,
      nonce: this.unsealNonce,
      version: VERSION,
      migration: false,
      recovery_seal: false,
      storage_type: this.storage.type,
    };
    if (!this.sealed && this.cluster) Object.assign(status, this.cluster);
    if (pendingInit) status.init_pending = true;
    const rekey = current && (await this.rekey.pendingRecord());
    if (rekey) status.rekey_pending = { nonce: rekey.nonce, t: rekey.config.secret_threshold, n: rekey.config.secret_shares };
    return status;
  }

  private async pendingInitConfig(): Promise<SealConfig | undefined> {
    const raw = await this.storage.get(INIT_PENDING_PATH);
    return raw && parseSealConfig(raw);
  }

  /** What an unseal may open, the current layout first. */
  private async unsealCandidates(): Promise<UnsealCandidate[]> {
    const current = await this.sealConfig();
    if (!current) {
      const init = await this.pendingInitConfig();
      return init ? [{ config: init, kind: 'init' }] : [];
    }
    const rekey = await this.rekey.pendingRecord();
    return rekey ? [{ config: current, kind: 'current' }, { config: rekey.config, kind: 'rekey', rekey }] : [{ config: current, kind: 'current' }];
  }

  /** Takes one share (or a reset); at the threshold rebuilds the root key in the token and unseals. */
  /**
   * Takes one share (or a reset); at a threshold rebuilds the root key in the token and unseals.
   * With a rekey pending, the shares may be the current ones or the new ones (at their own
   * threshold); new ones finish the rekey. With an init pending, its shares confirm it.
   */
  unseal(key: unknown, reset: boolean): Promise<SealStatus> {
    return this.stateLock.run(async () => {
      const candidates = await this.unsealCandidates();
      if (!candidates.length) throw new NotInitializedError();
      if (reset) {
        this.resetUnseal();
        return this.readSealStatus();
      }
      if (key === undefined || key === null || key === '') {
        throw new InvalidRequestError("'key' must be specified in request body as JSON, or 'reset' set to true");
      }
      const share = decodeShareOfAny(key, candidates.map((c) => shareLength(c.config)));
      if (!this.sealed) {
        share.fill(0);
        return this.readSealStatus();
      }
      if (this.unsealShares.progress === 0) this.unsealNonce = randomUUID();
      this.unsealShares.add(share);
      const progress = this.unsealShares.progress;
      for (const candidate of candidates.filter((c) => c.config.secret_threshold === progress)) {
        if (await this.unsealAs(candidate, this.unsealShares.copies(progress))) {
          this.resetUnseal();
          return this.readSealStatus();
        }
      }
      if (candidates.every((c) => c.config.secret_threshold <= progress)) {
        this.resetUnseal();
        const t = candidates.map((c) => c.config.secret_threshold).join(' or ');
        throw new InvalidRequestError(`unseal failed: the ${t} shares given do not rebuild this cluster's root key (a share from another cluster, or a mistyped one); progress has been reset`);
      }
      return this.readSealStatus();
    });
  }

  async seal(): Promise<void> {
    // Outside the state lock: stopping waits for an election step that may itself need the lock.
    await this.ha?.stop();
    return this.stateLock.run(async () => {
      await this.stopActiveDuties();
      this.audit.clear();
      await this.barrier.seal();
      this.tokens.clear();
      this.policies.clear();
      this.mounts.clear();
      this.auth.clear();
      this.authMethods.prune(true);
      this.cluster = undefined;
      this.pendingRekeyRoot = undefined;
      this.resetUnseal();
      this.token.disconnect();
      this.log.info('sealed');
    });
  }

  mount(path: string, type: string, version: string, description: string, ttls?: MountTtls): Promise<void> {
    return this.stateLock.run(() => this.mounts.mount(path, type, version, description, ttls));
  }

  async unmount(path: string): Promise<void> {
    await this.stateLock.run(async () => {
      await this.mounts.unmount(path, (prefix) => new BarrierView(this.barrier, prefix).deleteAll());
      this.router.prune();
    });
  }

  enableAuth(path: string, type: string, description: string, ttls?: MountTtls): Promise<void> {
    return this.stateLock.run(async () => {
      await this.auth.enable(path, type, description, ttls);
    });
  }

  /** Disables an auth method: no request reaches it from the first write; the tokens its logins issued are revoked and its data deleted. */
  disableAuth(path: string): Promise<void> {
    return this.stateLock.run(async () => {
      await this.auth.disable(path, this.authDisableSteps());
      this.authMethods.prune();
    });
  }

  tuneAuth(path: string, description: string | undefined, ttls: MountTtls | undefined): Promise<void> {
    return this.stateLock.run(() => this.auth.tune(path, description, ttls));
  }

  private authDisableSteps(): DisableSteps {
    return {
      revokeTokens: async (prefix) => {
        const revoked = await this.tokens.revokeIssuedUnder(prefix);
        this.log.info({ prefix, revoked }, 'revoked the tokens of a disabled auth method');
      },
      deleteData: (prefix) => new BarrierView(this.barrier, prefix).deleteAll(),
    };
  }

  /** sys/rotate: a new term, generated in the token; no shares needed. */
  rotate(): Promise<{ term: number; installTime: string }> {
    return this.stateLock.run(async () => {
      const entry = await this.barrier.rotate();
      this.log.info({ term: entry.term }, 'rotated the encryption key');
      return { term: entry.term, installTime: entry.installTime };
    });
  }

  /** Runs the automatic-rotation check now (the timer does this every rotationCheckMs). */
  checkRotation(): Promise<void> {
    return this.rotation.check();
  }

  setRotationConfig(body: Record<string, unknown>): Promise<void> {
    return this.stateLock.run(() => this.barrier.setRotationConfig(updateRotationConfig(this.barrier.rotationConfig(), body)));
  }

  /** Every term with its install time, encryption count and how many stored values it protects. */
  async terms(): Promise<TermStatus[]> {
    const usage = await this.barrier.termUsage();
    const active = this.barrier.activeKey().term;
    return this.barrier.terms().map((t) => ({
      term: t.term,
      install_time: t.installTime,
      encryptions: t.encryptions,
      values: usage.get(t.term) ?? 0,
      active: t.term === active,
    }));
  }

  /** Removes every older term no stored value uses; refuses, with the counts, while any is still used. */
  prune(): Promise<number[]> {
    return this.stateLock.run(async () => {
      const terms = await this.terms();
      const used = terms.filter((t) => !t.active && t.values > 0);
      if (used.length) {
        const detail = used.map((t) => `term ${t.term} protects ${t.values} value${t.values === 1 ? '' : 's'}`).join(', ');
        throw new InvalidRequestError(`cannot prune: ${detail}; run sys/rotate/rewrap first`);
      }
      const removable = terms.filter((t) => !t.active).map((t) => t.term);
      if (removable.length) await this.barrier.pruneTerms(removable);
      this.log.info({ terms: removable }, 'pruned unused encryption-key terms');
      return removable;
    });
  }

  /**
   * Checks the client token and that its policies grant the capability the request needs
   * (computed only for a valid, non-root token) and sudo when the path needs it; counts one use
   * of a limited-use token. Returns the token's entry.
   */
  async authorize(
    clientToken: string | undefined,
    needed: (entry: TokenEntry) => Promise<{ capability: Capability; path: string; sudo: boolean }>,
    remoteAddress?: string,
  ): Promise<TokenEntry> {
    const entry = await this.tokens.lookup(clientToken);
    if (remoteAddress !== undefined) this.tokens.checkAddress(entry, remoteAddress);
    if (!entry.policies.includes('root')) {
      // Lists are checked on the folder path with its trailing slash, as Vault does.
      const { capability, path, sudo } = await needed(entry);
      const acl = await this.policies.aclFor(entry.policies);
      if (!acl.allows(path, capability, sudo)) {
        throw new PermissionDeniedError(`the token's policies (${entry.policies.join(', ')}) do not grant ${sudo ? `${capability} with sudo` : capability} on "${path}"`);
      }
    }
    await this.tokens.use(entry);
    return entry;
  }

  /** Seals (persisting encryption counts) before the process exits. */
  async shutdown(): Promise<void> {
    if (!this.sealed) await this.seal();
  }

  /** Unseals with `shares` as `candidate`'s; false when they do not open it. */
  private async unsealAs(candidate: UnsealCandidate, shares: Buffer[]): Promise<boolean> {
    const rebuilt = rebuildKey(this.token, shares, 'unseal', () => this.resetUnseal());
    let rootKey = rebuilt;
    try {
      // The new shares of a pending rekey open the root key it sealed under the new one.
      if (candidate.rekey) rootKey = this.barrier.openSealedRoot(rebuilt, Buffer.from(candidate.rekey.sealed_root, 'base64'));
      await this.barrier.unseal(rootKey);
      if (candidate.kind === 'init') await this.confirmPendingInit();
      await this.mounts.load();
      await this.auth.load();
      const cluster = await this.barrier.get(CLUSTER_PATH);
      this.cluster = cluster && (JSON.parse(cluster.toString('utf8')) as ClusterInfo);
    } catch (err) {
      await this.barrier.seal();
      this.token.releaseKey(rebuilt);
      if (rootKey !== rebuilt) this.token.releaseKey(rootKey);
      if (err instanceof IntegrityError) return false;
      this.resetUnseal();
      throw err;
    }
    if (candidate.rekey) this.pendingRekeyRoot = { key: rebuilt, rekey: candidate.rekey };
    this.unsealNonce = '';
    await this.audit.load();
    if (this.ha) {
      // A cluster node starts as a standby; the election decides whether it takes up the active duties.
      this.ha.start();
    } else {
      await this.startActiveDuties();
    }
    this.log.info(candidate.rekey ? 'unsealed with the new shares of a pending rekey' : 'unsealed');
    return true;
  }

  /** Switches to the rekey this node was unsealed with the new shares of, unless another node already did or it was discarded. */
  private async finishPendingRekey(newRoot: TokenKey, rekey: PendingRekey): Promise<void> {
    try {
      if ((await this.rekey.pendingRecord())?.nonce === rekey.nonce) {
        await this.rekey.completePending(newRoot, rekey);
        return;
      }
    } catch (err) {
      this.log.error({ err, nonce: rekey.nonce }, 'rekey stays pending: finishing it failed; the next unseal with the new shares tries again');
    }
    this.token.releaseKey(newRoot);
  }

  /** What only the node that writes does: count persistence, automatic rotation, rewrap. */
  private async startActiveDuties(): Promise<void> {
    const pending = this.pendingRekeyRoot;
    this.pendingRekeyRoot = undefined;
    if (pending) await this.finishPendingRekey(pending.key, pending.rekey);
    await this.auth
      .finishDisables(this.authDisableSteps())
      .catch((err: unknown) => this.log.error({ err }, 'finishing an interrupted auth method disable failed; it is retried at the next unseal'));
    this.authMethods.prune();
    this.startCountPersistence();
    this.startCubbyholeSweep();
    this.rotation.start();
    await this.rewrap.load();
  }

  private async stopActiveDuties(): Promise<void> {
    if (this.countTimer) clearInterval(this.countTimer);
    if (this.cubbyholeTimer) clearInterval(this.cubbyholeTimer);
    this.cubbyholeTimer = undefined;
    this.countTimer = undefined;
    this.rotation.stop();
    await this.rewrap.pause();
    this.rekey.cancel();
    this.generateRoot.cancel();
  }

  /**
   * Follows the active node's rotations (upgrade entries) and rekey (`core/root-key`). When the
   * upgrade chain cannot be followed (a keyring already under a newer root key), the root key is
   * taken up first and the keyring reloaded under it.
   */
  private async catchUpKeys(reload = false): Promise<void> {
    let chainFailed = false;
    try {
      const learnt = await this.barrier.followUpgrades();
      if (learnt.length) this.log.info({ terms: learnt }, 'followed a rotation on the active node');
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      chainFailed = true;
    }
    const rekeyed = await this.barrier.followRootKey();
    if (rekeyed) this.log.info('followed a rekey on the active node');
    if (rekeyed || chainFailed || reload) {
      const learnt = await this.barrier.reloadKeyring();
      if (learnt.length && !rekeyed) this.log.info({ terms: learnt }, 'learnt terms from the keyring (their upgrade entries had expired)');
    }
  }

  /** Rereads the mount table another node changed, dropping engines of mounts that are gone. */
  private async reloadMounts(): Promise<void> {
    await this.mounts.load();
    this.router.prune();
  }

  /** Rereads the auth table another node changed, dropping methods that are gone (all of them when `all`). */
  private async reloadAuth(all = false): Promise<void> {
    await this.auth.load();
    this.authMethods.prune(all);
  }

  private haDuties(): HaDuties {
    return {
      becomeActive: () =>
        this.stateLock.run(async () => {
          if (this.sealed) throw new Error('sealed');
          // Catch up with everything the previous active node did, reloading the keyring in full.
          await this.catchUpKeys(true);
          await this.reloadMounts();
          await this.reloadAuth(true);
          this.policies.clear();
          this.tokens.forgetEntries();
          await this.audit.load();
          await this.rekey.cancelOrphaned();
          await this.barrier.pruneUpgrades(this.opts.ha!.upgradeGraceMs);
          await this.startActiveDuties();
        }),
      becomeStandby: () => this.stateLock.run(() => this.stopActiveDuties()),
      follow: (paths) =>
        this.stateLock.run(async () => {
          if (this.sealed) return;
          const all = paths === 'all';
          const any = (test: (p: string) => boolean) => all || [...paths].some(test);
          // A full pass (poll, reconnect) also rereads the keyring: upgrade entries expire, so a
          // standby paused past the grace period learns the terms it missed there.
          if (any((p) => p.startsWith(UPGRADE_PREFIX) || p === ROOT_KEY_PATH)) await this.catchUpKeys(all);
          if (any((p) => p === MOUNTS_PATH)) await this.reloadMounts();
          if (any((p) => p === AUTH_TABLE_PATH)) await this.reloadAuth();
          if (any((p) => p.startsWith('sys/policy/'))) this.policies.clear();
          if (any((p) => p.startsWith('sys/token/'))) this.tokens.forgetEntries();
          if (!all && any((p) => p === AUDIT_TABLE_PATH)) await this.audit.load();
        }),
      housekeeping: async () => {
        await this.barrier.pruneUpgrades(this.opts.ha!.upgradeGraceMs);
      },
    };
  }

  /** Deletes the cubbyholes of tokens that expired unused (a wrapping token never unwrapped keeps its reply until then). */
  private startCubbyholeSweep(): void {
    let sweeping = false;
    this.cubbyholeTimer = setInterval(() => {
      if (this.sealed || sweeping) return;
      sweeping = true;
      this.cubbyholes
        .sweep(this.tokens, (this.opts.now ?? Date.now)())
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not delete the cubbyholes of expired tokens; retried later'))
        .finally(() => (sweeping = false));
    }, CUBBYHOLE_SWEEP_MS);
    this.cubbyholeTimer.unref();
  }

  private startCountPersistence(): void {
    let last = this.barrier.activeKey().encryptions;
    this.countTimer = setInterval(() => {
      if (this.sealed) return;
      const { encryptions } = this.barrier.activeKey();
      if (encryptions === last) return;
      last = encryptions;
      this.barrier.persistCounts().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not persist encryption counts'));
    }, this.opts.countPersistMs ?? 5000);
    this.countTimer.unref();
  }

  private resetUnseal(): void {
    this.unsealShares.reset();
    this.unsealNonce = '';
  }
}
