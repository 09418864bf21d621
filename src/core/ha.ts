import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { HaStorage } from '../storage/backend.js';

export interface HaSettings {
  storage: HaStorage;
  /** Names this node in sys/leader and the X-Keyward-Node header. */
  nodeId: string;
  /** Where clients (and forwarding standbys) reach this node when it is active. */
  apiAddr: string;
  clusterAddr: string;
  /** A standby may take over this long after the active node's last renewal. */
  lockTtlMs: number;
  /** How long `core/upgrade/N` entries are kept after a rotation. */
  upgradeGraceMs: number;
  /** How often a standby re-reads what it follows, in case a notification was missed. */
  pollMs: number;
  /**
   * Test-only (KEYWARD_TEST_HA_FREEZE_LEASE_FILE, never from config): while this file exists an
   * active node neither renews nor checks its lease, so it keeps believing it is active after the
   * lease has passed to another node, and its writes reach the storage's fence.
   */
  freezeLeaseFile?: string;
}

/** What the core does when this node's role changes, and how a standby follows the active node. */
export interface HaDuties {
  becomeActive(): Promise<void>;
  becomeStandby(): Promise<void>;
  /** Follows changes the active node made at `paths` (every followed path when 'all'). */
  follow(paths: ReadonlySet<string> | 'all'): Promise<void>;
  /** The active node's periodic chores (dropping upgrade entries past their grace period). */
  housekeeping(): Promise<void>;
}

export interface LeaderStatus {
  ha_enabled: boolean;
  is_self: boolean;
  active_time: string;
  leader_address: string;
  leader_cluster_address: string;
  performance_standby: boolean;
  performance_standby_last_remote_wal: number;
}

/** sys/leader with no active node known (sealed, outside a cluster, or during an election). */
export function noLeaderStatus(haEnabled: boolean): LeaderStatus {
  return {
    ha_enabled: haEnabled,
    is_self: false,
    active_time: '0001-01-01T00:00:00Z',
    leader_address: '',
    leader_cluster_address: '',
    performance_standby: false,
    performance_standby_last_remote_wal: 0,
  };
}

/** After a step-down this node leaves the lease to the others for a while, as Vault does. */
const STEP_DOWN_PAUSE_MS = 10_000;

/**
 * Active/standby for one unsealed node: runs for the lease while standby, renews it while active
 * (stepping down when it cannot), and passes on the active node's changes while standby.
 */
export class HaCoordinator {
  /** Unique per process, so a restarted node never mistakes an older lease for its own. */
  private readonly holder: string;
  private mode: 'off' | 'standby' | 'active' = 'off';
  private epoch = 0;
  private activeSince: Date | undefined;
  private lastRenewStart = 0;
  private stepDownUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private feed: { close(): Promise<void> } | undefined;
  private pendingPaths = new Set<string>();
  private followAll = false;
  private following: Promise<void> | undefined;
  private ticking: Promise<void> = Promise.resolve();

  constructor(
    readonly settings: HaSettings,
    private readonly duties: HaDuties,
    private readonly log: Logger,
  ) {
    this.holder = `${settings.nodeId}/${randomUUID()}`;
  }

  get isStandby(): boolean {
    return this.mode === 'standby';
  }

  /** After unseal: start as a standby and run for the lease at once. */
  start(): void {
    if (this.mode !== 'off') return;
    this.settings.storage.setWriteFence({ kind: 'refuse' });
    this.mode = 'standby';
    this.feed = this.settings.storage.watch(
      (path) => this.onChange(path),
      () => this.queueFollow('all'),
    );
    this.pollTimer = setInterval(() => this.queueFollow('all'), this.settings.pollMs);
    this.pollTimer.unref();
    this.schedule(0);
  }

  /** On seal or shutdown: gives the lease up so a standby need not wait for it to expire. */
  async stop(): Promise<void> {
    if (this.mode === 'off') return;
    clearTimeout(this.timer);
    clearInterval(this.pollTimer);
    const wasActive = this.mode === 'active';
    this.mode = 'off';
    await this.ticking;
    await this.following;
    await this.feed?.close();
    if (wasActive) {
      await this.duties.becomeStandby();
      await this.releaseLease();
    }
    this.settings.storage.setWriteFence({ kind: 'open' });
    this.activeSince = undefined;
  }

  /** sys/step-down: gives the lease up and leaves it to the other nodes for a while. */
  async stepDown(): Promise<void> {
    if (this.mode !== 'active') return;
    this.stepDownUntil = Date.now() + STEP_DOWN_PAUSE_MS;
    await this.demote('stepped down on request');
    await this.releaseLease();
  }

  async leaderStatus(): Promise<LeaderStatus> {
    const status = noLeaderStatus(true);
    if (this.mode === 'active') {
      return {
        ...status,
        is_self: true,
        active_time: this.activeSince!.toISOString(),
        leader_address: this.settings.apiAddr,
        leader_cluster_address: this.settings.clusterAddr,
      };
    }
    const leader = await this.settings.storage.leader();
    if (!leader) return status;
    return { ...status, leader_address: leader.address, leader_cluster_address: leader.clusterAddress };
  }

  /** The active node's API address, or undefined while there is none (or this node is it). */
  async activeAddress(): Promise<string | undefined> {
    if (this.mode === 'active') return undefined;
    return (await this.settings.storage.leader())?.address;
  }

  /** Best effort: if it fails, the lease simply runs out. */
  private releaseLease(): Promise<void> {
    return this.settings.storage.release(this.holder, this.epoch).catch(() => undefined);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.mode === 'off') return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'HA election step failed'));
    }, ms);
    this.timer.unref();
  }

  private renewEveryMs(): number {
    return Math.max(100, Math.floor(this.settings.lockTtlMs / 3));
  }

  private async tick(): Promise<void> {
    if (this.mode === 'standby') return this.runForLease();
    if (this.mode === 'active') return this.renew();
  }

  private async runForLease(): Promise<void> {
    const wait = this.stepDownUntil - Date.now();
    if (wait > 0) return this.schedule(wait);
    const { storage, nodeId, apiAddr, clusterAddr, lockTtlMs } = this.settings;
    let epoch: number | undefined;
    const started = Date.now();
    try {
      epoch = await storage.acquire({ holder: this.holder, nodeId, address: apiAddr, clusterAddress: clusterAddr }, lockTtlMs);
      if (epoch === undefined) {
        // Try again the moment the current lease runs out (checked at least every second).
        const remaining = (await storage.leader())?.remainingMs ?? 0;
        return this.schedule(Math.min(1000, Math.max(20, Math.ceil(remaining) + 5)));
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not run for the leader lease; retrying');
      return this.schedule(1000);
    }
    if (this.mode !== 'standby') return;
    this.epoch = epoch;
    this.lastRenewStart = started;
    await this.promote();
  }

  private async promote(): Promise<void> {
    this.settings.storage.setWriteFence({ kind: 'lease', holder: this.holder, epoch: this.epoch });
    this.mode = 'active';
    this.activeSince = new Date();
    try {
      await this.duties.becomeActive();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not take up the active role; giving the lease back');
      await this.demote('failed to become active');
      await this.releaseLease();
      return;
    }
    this.log.info({ epoch: this.epoch, node: this.settings.nodeId }, 'this node is now active');
    this.schedule(this.renewEveryMs());
  }

  private async renew(): Promise<void> {
    if (this.leaseFrozen()) return this.schedule(this.renewEveryMs());
    const started = Date.now();
    try {
      if (!(await this.settings.storage.renew(this.holder, this.epoch, this.settings.lockTtlMs))) {
        return this.demote('the leader lease was lost');
      }
      this.lastRenewStart = started;
    } catch (err) {
      // Judged from when the last good renewal was sent: past the TTL the lease may be another's.
      if (started - this.lastRenewStart >= this.settings.lockTtlMs) return this.demote(`could not renew the lease: ${(err as Error).message}`);
      this.log.warn({ err: (err as Error).message }, 'could not renew the leader lease; retrying');
      return this.schedule(Math.min(500, this.renewEveryMs()));
    }
    await this.duties.housekeeping().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'HA housekeeping failed'));
    this.schedule(this.renewEveryMs());
  }

  private leaseFrozen(): boolean {
    const file = this.settings.freezeLeaseFile;
    return file !== undefined && existsSync(file);
  }

  private async demote(reason: string): Promise<void> {
    if (this.mode !== 'active') return;
    this.settings.storage.setWriteFence({ kind: 'refuse' });
    this.mode = 'standby';
    this.activeSince = undefined;
    this.log.warn({ reason }, 'this node is now a standby');
    await this.duties.becomeStandby();
    this.queueFollow('all');
    this.schedule(this.renewEveryMs());
  }

  private onChange(path: string): void {
    if (path === 'lease') {
      if (this.mode === 'standby') this.schedule(0);
      return;
    }
    this.pendingPaths.add(path);
    this.queueFollow();
  }

  /** Follows queued changes one batch at a time (standbys only; the active node made them). */
  private queueFollow(all?: 'all'): void {
    if (all) this.followAll = true;
    if (this.following || this.mode !== 'standby') {
      if (this.mode !== 'standby') this.pendingPaths.clear();
      return;
    }
    this.following = (async () => {
      while (this.mode === 'standby' && (this.followAll || this.pendingPaths.size)) {
        const batch: ReadonlySet<string> | 'all' = this.followAll ? 'all' : this.pendingPaths;
        this.followAll = false;
        this.pendingPaths = new Set();
        await this.duties.follow(batch).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not follow the active node; retrying at the next poll'));
      }
    })().finally(() => {
      this.following = undefined;
    });
  }
}
