import { setImmediate as yieldTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { TokenBarrier } from '../barrier/barrier.js';
import { InvalidRequestError } from './errors.js';

export const REWRAP_PATH = 'core/rewrap';

export type RewrapState = 'idle' | 'running' | 'done' | 'canceled' | 'failed';

/** What is persisted (through the barrier) so a restart or failover resumes where the job was. */
interface RewrapRecord {
  state: RewrapState;
  target_term: number;
  /** Every path ≤ cursor (in sorted order) has been handled. */
  cursor: string;
  done: number;
  total: number;
  rewrapped: number;
  started_at: string;
  finished_at: string;
  error: string;
}

export interface RewrapStatus {
  state: RewrapState;
  done: number;
  total: number;
  rewrapped: number;
  /** Entries per second since this process (re)started the job. */
  rate: number;
  started_at: string;
  finished_at: string;
  target_term: number;
  error: string;
}

export interface RewrapOptions {
  barrier: TokenBarrier;
  log: Logger;
  /** Upper bound on entries per second, so foreground traffic keeps its latency. */
  maxRate: number;
  /** Entries in flight at once. */
  concurrency: number;
  /** How often progress is persisted (ms). */
  persistMs: number;
}

const IDLE: RewrapRecord = {
  state: 'idle',
  target_term: 0,
  cursor: '',
  done: 0,
  total: 0,
  rewrapped: 0,
  started_at: '',
  finished_at: '',
  error: '',
};

/**
 * Retires old terms: re-encrypts every stored value still under an older term to the active
 * term, online and throttled, persisting its cursor so it resumes after a restart or failover.
 */
export class RewrapJob {
  private record: RewrapRecord = { ...IDLE };
  private running: Promise<void> | undefined;
  private stopRequested = false;
  private sessionStart = 0;
  private sessionDone = 0;

  constructor(private readonly opts: RewrapOptions) {}

  status(): RewrapStatus {
    const { cursor: _cursor, ...rest } = this.record;
    const seconds = (Date.now() - this.sessionStart) / 1000;
    const rate = this.running && seconds > 0 ? Math.round(this.sessionDone / seconds) : 0;
    return { ...rest, rate };
  }

  /** Loads the persisted record (after unseal) and resumes a job that was running. */
  async load(): Promise<void> {
    const raw = await this.opts.barrier.get(REWRAP_PATH);
    this.record = raw ? (JSON.parse(raw.toString('utf8')) as RewrapRecord) : { ...IDLE };
    if (this.record.state === 'running') {
      this.opts.log.info({ done: this.record.done, total: this.record.total }, 'resuming rewrap');
      this.launch();
    }
  }

  async start(): Promise<RewrapStatus> {
    if (this.running) throw new InvalidRequestError('a rewrap is already running; DELETE sys/rotate/rewrap cancels it');
    this.record = {
      ...IDLE,
      state: 'running',
      target_term: this.opts.barrier.activeKey().term,
      started_at: new Date().toISOString(),
    };
    await this.persist();
    this.launch();
    return this.status();
  }

  async cancel(): Promise<RewrapStatus> {
    if (this.record.state !== 'running') return this.status();
    await this.pause();
    this.record.state = 'canceled';
    this.record.finished_at = new Date().toISOString();
    await this.persist();
    return this.status();
  }

  /** Stops the loop without changing the persisted state (on seal or step-down), so it resumes later. */
  async pause(): Promise<void> {
    this.stopRequested = true;
    await this.running;
    this.stopRequested = false;
  }

  private launch(): void {
    this.sessionStart = Date.now();
    this.sessionDone = 0;
    this.running = this.loop()
      .catch(async (err: unknown) => {
        this.record.state = 'failed';
        this.record.error = (err as Error).message;
        this.opts.log.error({ err: this.record.error }, 'rewrap failed');
        await this.persist().catch(() => undefined);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async loop(): Promise<void> {
    const { barrier, maxRate, concurrency, persistMs, log } = this.opts;
    const paths = (await barrier.valuePaths()).filter((p) => p !== REWRAP_PATH);
    const resumeFrom = this.record.cursor;
    const todo = resumeFrom ? paths.filter((p) => p > resumeFrom) : paths;
    this.record.total = paths.length;
    this.record.done = paths.length - todo.length;

    // Workers take paths in order; the cursor advances only over a prefix that is fully handled.
    const finished = new Array<boolean>(todo.length).fill(false);
    let frontier = 0;
    let next = 0;
    let lastPersist = Date.now();
    const minGapMs = maxRate > 0 ? (1000 * concurrency) / maxRate : 0;

    const advance = async () => {
      while (frontier < todo.length && finished[frontier]) this.record.cursor = todo[frontier++]!;
      if (Date.now() - lastPersist >= persistMs) {
        lastPersist = Date.now();
        await this.persist();
      }
    };

    const worker = async () => {
      while (!this.stopRequested && next < todo.length) {
        const i = next++;
        const began = Date.now();
        if ((await barrier.rewrapValue(todo[i]!)) === 'rewrapped') this.record.rewrapped++;
        finished[i] = true;
        this.record.done++;
        this.sessionDone++;
        await advance();
        const wait = minGapMs - (Date.now() - began);
        // Always yield a turn of the event loop, so foreground requests go first.
        if (wait > 0) await sleep(wait);
        else await yieldTurn();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
    if (this.stopRequested) {
      await this.persist();
      return;
    }
    this.record.state = 'done';
    this.record.finished_at = new Date().toISOString();
    await this.persist();
    log.info({ total: this.record.total, rewrapped: this.record.rewrapped }, 'rewrap finished');
  }

  private persist(): Promise<void> {
    return this.opts.barrier.put(REWRAP_PATH, Buffer.from(JSON.stringify(this.record)));
  }
}
