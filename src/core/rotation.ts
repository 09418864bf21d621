import type { Logger } from 'pino';
import type { TokenBarrier } from '../barrier/barrier.js';
import { installTimeNow } from '../barrier/install-time.js';
import type { RotationConfig } from '../barrier/keyring.js';
import { InvalidRequestError } from './errors.js';
import type { Metrics } from './metrics.js';

export const MIN_MAX_OPERATIONS = 1_000_000;
export const MAX_MAX_OPERATIONS = 3_865_470_566;
export const MIN_INTERVAL_SECONDS = 24 * 3600;

/** The longest duration taken: longer ones would overflow a millisecond timestamp's safe integers. */
export const MAX_DURATION_SECONDS = Math.floor((Number.MAX_SAFE_INTEGER - Date.UTC(3000, 0)) / 1000);

/** Parses Vault-style durations: seconds as a number or digits, or "720h", "1h30m", "90s". */
export function parseDuration(v: unknown, field: string): number {
  let seconds: number | undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) seconds = v;
  else if (typeof v === 'string' && /^\d+$/.test(v)) seconds = Number(v);
  else if (typeof v === 'string' && v !== '') {
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v);
    if (m) seconds = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
  }
  if (seconds === undefined) throw new InvalidRequestError(`${field} must be a number of seconds or a duration such as "720h"`);
  if (seconds > MAX_DURATION_SECONDS) throw new InvalidRequestError(`${field} is out of range: at most ${MAX_DURATION_SECONDS} seconds`);
  return seconds;
}

export function formatDuration(seconds: number): string {
  if (seconds === 0) return '0s';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h}h${m}m${s}s`;
}

/** Applies a sys/rotate/config write to the current config; only the fields given change. */
export function updateRotationConfig(current: RotationConfig, body: Record<string, unknown>): RotationConfig {
  let { maxOperations, interval, enabled } = current;
  if (body.max_operations !== undefined) {
    const v = body.max_operations;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new InvalidRequestError('max_operations must be a whole number');
    if (n < MIN_MAX_OPERATIONS || n > MAX_MAX_OPERATIONS) {
      throw new InvalidRequestError(`max_operations must be between ${MIN_MAX_OPERATIONS} and ${MAX_MAX_OPERATIONS}`);
    }
    maxOperations = n;
  }
  if (body.interval !== undefined) {
    interval = parseDuration(body.interval, 'interval');
    if (interval !== 0 && interval < MIN_INTERVAL_SECONDS) throw new InvalidRequestError('interval must be 0 (off) or at least 24h');
  }
  if (body.enabled !== undefined) {
    if (typeof body.enabled !== 'boolean' && body.enabled !== 'true' && body.enabled !== 'false') {
      throw new InvalidRequestError('enabled must be true or false');
    }
    enabled = body.enabled === true || body.enabled === 'true';
  }
  return { maxOperations, interval, enabled };
}

export interface RotationSchedulerOptions {
  barrier: TokenBarrier;
  log: Logger;
  metrics: Metrics;
  /** Milliseconds since the epoch; injectable so tests can move time instead of sleeping. */
  now: () => number;
  checkMs: number;
}

/**
 * Automatic rotation: every `checkMs` the active node rotates when the active term has done
 * `max_operations` encryptions or is older than `interval` (NIST SP 800-38D limits).
 */
export class RotationScheduler {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly opts: RotationSchedulerOptions) {}

  start(): void {
    this.stop();
    this.timer = setInterval(() => void this.check(), this.opts.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check; concurrent calls share it. */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const { barrier, log, metrics } = this.opts;
    if (barrier.sealed) return;
    const config = barrier.rotationConfig();
    const active = barrier.activeKey();
    metrics.activeTerm.set(active.term);
    metrics.activeEncryptions.set(active.encryptions);
    if (!config.enabled) return;
    let reason: 'max_operations' | 'interval' | undefined;
    if (active.encryptions >= config.maxOperations) reason = 'max_operations';
    else if (config.interval > 0 && this.opts.now() - Date.parse(active.installTime) >= config.interval * 1000) reason = 'interval';
    if (!reason) return;
    try {
      const entry = await barrier.rotate(installTimeNow(new Date(this.opts.now())));
      metrics.autoRotations.inc({ reason });
      log.info({ reason, term: entry.term, previousEncryptions: active.encryptions }, 'rotated the encryption key automatically');
    } catch (err) {
      log.error({ err: (err as Error).message, reason }, 'automatic rotation failed; will retry at the next check');
    }
  }
}
