import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import type { Logger } from 'pino';
import { failureRung, IntegrityError, TokenError, TokenUnavailableError } from './errors.js';

/** What the pool needs from the token: sessions, key handles and the module-wide rungs of the recovery ladder. */
export interface PoolHost {
  /** A new logged-in session (throws TokenError, CKR_SESSION_COUNT when the token has none to give). */
  openSession(): Buffer;
  closeSession(session: Buffer): void;
  /** How many times the module was re-initialized: sessions from an older epoch are dead. */
  readonly moduleEpoch: number;
  /** Changes whenever the token's own session (and with it every key handle) is replaced. */
  readonly generation: number;
  /** Recovers the token's own session ('session': log in again, re-find keys) or the module ('library'). */
  recover(rung: 'session' | 'library'): void;
}

/** A call a pool thread makes: an AES-GCM encryption or decryption, or a C_Sign (signature or HMAC). */
export interface PoolJob {
  encrypt: boolean;
  /** A signature or HMAC instead of GCM: `iv` then holds the mechanism's parameters (see encodeSignParameters) and `aad` is empty. */
  sign?: { mechanism: number; outBytes: number };
  /** Resolved on the event loop just before the call is sent, so a handle lost in a recovery is made again. */
  keyHandle: () => Buffer;
  iv: Buffer;
  aad: Buffer;
  input: Buffer;
  /** Names the value in an IntegrityError. */
  what: string;
}

interface QueuedJob extends PoolJob {
  attempts: number;
  /** The token's generation when the call was sent: a key-handle failure from an older one is already mended. */
  sentGeneration: number;
  enqueuedAt: number;
  resolve(out: Buffer): void;
  reject(err: Error): void;
}

/**
 * Each lane of a thread is a SharedArrayBuffer mailbox (session-worker.mjs reads the same layout): eight
 * int32 words (state: 0 idle, 1 call waiting, 2 done; op, then on return the status; iv, aad and input
 * lengths; room for the output, then on return its length; a signing call's mechanism, then on return
 * the CKR; whether the failure was in the operation rather than its *Init),
 * the session and key handles (8 bytes each), iv, aad, input, then room for the output (input +
 * tag for GCM, what the job asks for a signature). A call that does not fit gets a mailbox of its size, sent to the thread with the call.
 */
const CALL_LAYOUT = { words: 8, handles: 32, data: 48, tag: 16 } as const;
const MAILBOX_BYTES = 64 * 1024;
/** The threads' priority below the event loop's (Linux nice): measured, health p99 under a full 1 ms load went from 13.5 to 7.5 ms. */
const THREAD_NICE = 10;
/** Set in the op word when a new mailbox was posted with the call. */
const OP_NEW_MAILBOX = 0x100;
const STATE_IDLE = 0;
const STATE_CALL = 1;
const STATE_DONE = 2;
const MESSAGE_READY = 1;
const OP_ENCRYPT = 1;
const OP_DECRYPT = 2;
const OP_SIGN = 3;
const STATUS_OK = 0;
const STATUS_TAG_FAILURE = 2;

class Mailbox {
  readonly words: Int32Array;
  readonly bytes: Buffer;
  constructor(readonly sab: SharedArrayBuffer) {
    this.words = new Int32Array(sab, 0, CALL_LAYOUT.words);
    this.bytes = Buffer.from(sab);
  }
}

/** A mailbox and the call in it. */
class Lane {
  job: QueuedJob | undefined;
  constructor(public mailbox: Mailbox) {}
}

/**
 * One thread and the session it works on, with two lanes: while a call runs in one, the next can
 * wait in the other, and the thread goes on to it without waiting for the event loop.
 */
class PoolSlot {
  session: Buffer | undefined;
  epoch = -1;
  ready = false;
  /** The lane the next call goes into; the thread runs them in the same turn. */
  fill = 0;
  /**
   * The session failed while the other lane still had a call for it: it takes no new calls and is
   * closed once that call is back (closed earlier, its handle could be given to another thread's
   * new session while this thread still uses it).
   */
  closeWhenIdle = false;
  readonly started: Promise<void>;
  constructor(
    readonly worker: Worker,
    readonly port: MessagePort,
    readonly lanes: readonly [Lane, Lane],
    /**
     * Word 0 is bumped with every call given; the thread sleeps on it, and says so in word 1, so a
     * call given to a thread that is still busy costs no wake-up (notifying is a system call).
     */
    readonly bell: Int32Array,
  ) {
    // Settled by the thread's first message, or by its death (the pool replaces it then).
    this.started = new Promise((resolve) => {
      port.once('message', () => resolve());
      worker.once('exit', () => resolve());
    });
  }

  get idle(): boolean {
    return !this.lanes[0].job && !this.lanes[1].job;
  }

  /** Whether it holds a session opened since the module's last re-initialization (`epoch`). */
  holdsSession(epoch: number): boolean {
    return this.session !== undefined && this.epoch === epoch;
  }

  /** The lane a call can go into now: the next in turn, if its last call was collected. */
  get openLane(): Lane | undefined {
    const lane = this.lanes[this.fill]!;
    return lane.job ? undefined : lane;
  }
}

const CKR_NAMES = new Map<number, string>(
  Object.entries(pkcs11js)
    .filter(([name, value]) => name.startsWith('CKR_') && typeof value === 'number')
    .map(([name, value]) => [value as number, name]),
);

export interface SessionPoolOptions {
  lib: string;
  /** What the token's C_Initialize was given (a thread's C_Initialize answers ALREADY_INITIALIZED, or initializes the same way). */
  initializeOptions: pkcs11js.InitializationOptions;
  /** Threads, and so sessions and calls in flight. */
  size: number;
  log?: Logger;
}

/** Calls that mean the key handles died with the token's own session (they are its session objects). */
const KEY_LOST = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID', 'CKR_USER_NOT_LOGGED_IN']);
const SESSION_WAIT_MS = 50;
/** A call that cannot get a session for this long answers 503. */
const QUEUE_TIMEOUT_MS = 30_000;

/**
 * AES-GCM on a pool of worker threads, each with its own logged-in session, so that a network
 * HSM's round trips (0.25–2 ms each) neither block the event loop nor serialize requests.
 * At most `size` calls are in flight; the rest wait in order. Sessions are opened on the event
 * loop (where the token's session count is known) and handed to the threads; a failed call
 * climbs the recovery ladder for its own session, or for the whole module with every thread
 * drained first, and is retried once (never after a tag failure).
 */
export class SessionPool {
  private readonly slots: PoolSlot[] = [];
  private readonly queue: QueuedJob[] = [];
  /** Set while the module is being recovered: nothing is dispatched until every thread is idle. */
  private draining: { rung: 'session' | 'library'; epoch: number; generation: number } | undefined;
  private sessionWait: NodeJS.Timeout | undefined;
  /** Raised by a thread that finished a call; see answerDoorbell. */
  private readonly doorbell = new Int32Array(new SharedArrayBuffer(4));
  /** After CKR_SESSION_COUNT no new session is asked for until then; calls go to the sessions held. */
  private noSessionsUntil = 0;
  private closed = false;

  constructor(
    private readonly host: PoolHost,
    private readonly opts: SessionPoolOptions,
  ) {
    for (let i = 0; i < opts.size; i++) this.slots.push(this.spawn());
  }

  /** Resolves once every thread has loaded the module (calls made before then simply wait). */
  started(): Promise<void> {
    return Promise.all(this.slots.map((s) => s.started)).then(() => undefined);
  }

  /** Whether any call is in flight on a thread. */
  get busy(): boolean {
    return this.slots.some((s) => !s.idle);
  }

  /** Re-initializes the module once no call is in flight (asked by a call on the event loop that found it gone). */
  recoverModule(epoch: number): void {
    this.startDrain('library', epoch, this.host.generation);
    this.dispatch();
  }

  run(job: PoolJob): Promise<Buffer> {
    if (this.closed) return Promise.reject(new TokenUnavailableError('the session pool is closed'));
    // Calls finished since the loop last turned are taken now: under load the doorbell's message
    // waits behind a whole turn of socket events, and the thread with it.
    if (Atomics.load(this.doorbell, 0) !== 0) this.answerDoorbell();
    return new Promise((resolve, reject) => {
      this.queue.push({ ...job, attempts: 0, sentGeneration: -1, enqueuedAt: Date.now(), resolve, reject });
      this.dispatch();
    });
  }

  /** Closes every session and stops the threads; queued calls answer 503. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.sessionWait);
    for (const job of this.queue.splice(0)) job.reject(new TokenUnavailableError('the session pool is closed'));
    for (const slot of this.slots) this.dropSession(slot);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const slot of this.slots) {
      for (const lane of slot.lanes) {
        lane.job?.reject(new TokenUnavailableError('the session pool is closed'));
        lane.job = undefined;
      }
      slot.port.close();
    }
  }

  private spawn(): PoolSlot {
    const { port1, port2 } = new MessageChannel();
    const lanes = [new Lane(new Mailbox(new SharedArrayBuffer(MAILBOX_BYTES))), new Lane(new Mailbox(new SharedArrayBuffer(MAILBOX_BYTES)))] as const;
    const bell = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(new URL('./session-worker.mjs', import.meta.url), {
      workerData: {
        lib: this.opts.lib,
        initializeOptions: this.opts.initializeOptions,
        port: port2,
        mailboxes: lanes.map((l) => l.mailbox.sab),
        bell: bell.buffer,
        doorbell: this.doorbell.buffer,
        nice: THREAD_NICE,
      },
      transferList: [port2],
    });
    const slot = new PoolSlot(worker, port1, lanes, bell);
    // The thread itself never keeps the process alive; its port does while it starts or has a call in flight.
    worker.unref();
    port1.on('message', (m: number) => {
      if (m === MESSAGE_READY) {
        slot.ready = true;
        port1.unref();
        // Its session is opened now rather than by the first call, which would wait for it.
        if (!this.draining && !this.closed) this.ensureSession(slot);
        this.dispatch();
        return;
      }
      this.answerDoorbell();
    });
    worker.on('error', (err) => this.lose(slot, err));
    worker.on('exit', (code) => {
      if (!this.closed) this.lose(slot, new Error(`session thread exited with code ${code}`));
    });
    return slot;
  }

  /** A thread that died takes its call with it: the call is retried elsewhere and the thread replaced. */
  private lose(slot: PoolSlot, err: Error): void {
    const i = this.slots.indexOf(slot);
    if (i < 0 || this.closed) return;
    this.opts.log?.error({ err: err.message }, 'a PKCS#11 session thread failed; replacing it');
    this.dropSession(slot);
    this.slots[i] = this.spawn();
    // Its calls are retried, each put back at the front of the queue: the newer first, so the older leads.
    for (const lane of [slot.lanes[1 - slot.fill]!, slot.lanes[slot.fill]!]) {
      const job = lane.job;
      lane.job = undefined;
      if (job) this.retryOrFail(job, new TokenUnavailableError(`session thread failed: ${err.message}`));
    }
    void slot.worker.terminate();
  }

  private dispatch(): void {
    if (this.draining) {
      if (this.slots.every((s) => s.idle)) this.finishDrain();
      return;
    }
    this.expireWaiting();
    // After the token's session was replaced, key handles are made anew and an HSM may hand out the
    // numbers of the dead ones again: no call with a new handle goes out while one with an old handle
    // is still in flight, so an encryption can never meet a different key under the same number.
    const usable = (s: PoolSlot) => s.ready && !s.closeWhenIdle && s.holdsSession(this.host.moduleEpoch);
    while (this.queue.length && !this.draining && !this.oldHandlesInFlight()) {
      // An idle thread first; then one whose second lane is free; then a new session.
      const slot = this.slots.find((s) => s.idle && usable(s)) ?? this.slots.find((s) => s.openLane && usable(s)) ?? this.slotWithNewSession();
      if (!slot) return;
      this.send(slot, this.queue.shift()!);
    }
  }

  private oldHandlesInFlight(): boolean {
    const generation = this.host.generation;
    return this.slots.some((s) => s.lanes.some((l) => l.job && l.job.sentGeneration !== generation));
  }

  /** An idle thread given a new session, unless the token has none to give (then a timer tries again). */
  private slotWithNewSession(): PoolSlot | undefined {
    if (Date.now() < this.noSessionsUntil) return undefined;
    const slot = this.slots.find((s) => s.ready && s.idle && !s.closeWhenIdle);
    if (!slot) return undefined;
    const got = this.ensureSession(slot);
    if (got === 'ok') return slot;
    if (got === 'wait') {
      this.noSessionsUntil = Date.now() + SESSION_WAIT_MS;
      this.waitForSession();
    }
    return undefined;
  }

  /** Opens the slot's session if it has none (or one from before a module re-initialization). */
  private ensureSession(slot: PoolSlot): 'ok' | 'wait' | 'failed' {
    if (slot.holdsSession(this.host.moduleEpoch)) return 'ok';
    slot.session = undefined;
    try {
      slot.session = this.host.openSession();
      slot.epoch = this.host.moduleEpoch;
      return 'ok';
    } catch (err) {
      const te = err instanceof TokenError ? err : undefined;
      // CKR_SESSION_COUNT means wait for a session, not fail.
      if (te?.ckr === 'CKR_SESSION_COUNT') return 'wait';
      if (te && failureRung(te) === 'library') {
        this.startDrain('library', this.host.moduleEpoch, this.host.generation);
        return 'failed';
      }
      this.failQueued(err instanceof TokenUnavailableError ? err : new TokenUnavailableError((err as Error).message));
      return 'failed';
    }
  }

  private send(slot: PoolSlot, job: QueuedJob): void {
    let key: Buffer;
    try {
      key = job.keyHandle();
    } catch (err) {
      job.reject(err as Error);
      queueMicrotask(() => this.dispatch());
      return;
    }
    job.sentGeneration = this.host.generation;
    const lane = slot.openLane!;
    slot.fill ^= 1;
    const { iv, aad, input } = job;
    const outRoom = job.sign ? job.sign.outBytes : input.length + CALL_LAYOUT.tag;
    const needed = CALL_LAYOUT.data + iv.length + aad.length + input.length + outRoom;
    // A call too big for the mailbox gets one of its size; a big one is not kept for later calls.
    // The thread looks at the lane's current mailbox: a call in a new one is signalled in the old
    // one with OP_NEW_MAILBOX, and the thread fetches the new one from its port.
    const previous = lane.mailbox;
    const mailboxBytes = previous.sab.byteLength;
    if (needed > mailboxBytes || (mailboxBytes > MAILBOX_BYTES && needed <= MAILBOX_BYTES)) {
      lane.mailbox = new Mailbox(new SharedArrayBuffer(Math.max(needed, MAILBOX_BYTES)));
    }
    const { words, bytes } = lane.mailbox;
    words[1] = job.sign ? OP_SIGN : job.encrypt ? OP_ENCRYPT : OP_DECRYPT;
    words[2] = iv.length;
    words[3] = aad.length;
    words[4] = input.length;
    words[5] = outRoom;
    words[6] = job.sign?.mechanism ?? 0;
    slot.session!.copy(bytes, CALL_LAYOUT.handles);
    key.copy(bytes, CALL_LAYOUT.handles + 8);
    let at = CALL_LAYOUT.data + iv.copy(bytes, CALL_LAYOUT.data);
    at += aad.copy(bytes, at);
    input.copy(bytes, at);
    lane.job = job;
    slot.port.ref();
    if (previous !== lane.mailbox) {
      Atomics.store(words, 0, STATE_CALL);
      slot.port.postMessage(lane.mailbox.sab);
      previous.words[1] = OP_NEW_MAILBOX;
    }
    Atomics.store(previous.words, 0, STATE_CALL);
    Atomics.add(slot.bell, 0, 1);
    if (Atomics.load(slot.bell, 1) !== 0) Atomics.notify(slot.bell, 0);
  }

  /**
   * Finishes every call marked done. The doorbell is lowered before looking, so a call finished
   * after the look rings it again; one message may report many calls, or none.
   */
  private answerDoorbell(): void {
    Atomics.store(this.doorbell, 0, 0);
    for (const slot of this.slots) {
      for (const lane of slot.lanes) {
        if (lane.job && Atomics.load(lane.mailbox.words, 0) === STATE_DONE) this.finish(slot, lane);
      }
    }
    this.dispatch();
  }

  private finish(slot: PoolSlot, lane: Lane): void {
    const job = lane.job!;
    lane.job = undefined;
    if (slot.idle) {
      slot.port.unref();
      if (slot.closeWhenIdle) this.dropSession(slot);
    }
    const { words, bytes } = lane.mailbox;
    Atomics.store(words, 0, STATE_IDLE);
    const [, status, ivBytes, aadBytes, inBytes, outBytes, ckr, inOperation] = words;
    const outAt = CALL_LAYOUT.data + ivBytes! + aadBytes! + inBytes!;
    if (status === STATUS_OK) {
      // Copied out, and the mailbox's copy of a decrypted value wiped: the mailbox is reused.
      const out = bytes.subarray(outAt, outAt + outBytes!);
      const result = Buffer.from(out);
      out.fill(0);
      job.resolve(result);
    } else if (status === STATUS_TAG_FAILURE) {
      job.reject(new IntegrityError(job.what));
    } else {
      const fn = `${job.sign ? 'C_Sign' : job.encrypt ? 'C_Encrypt' : 'C_Decrypt'}${inOperation ? '' : 'Init'}`;
      this.onCallFailed(slot, job, new TokenError(CKR_NAMES.get(ckr!) ?? `CKR_0x${(ckr! >>> 0).toString(16)}`, ckr!, fn));
    }
  }

  /** The recovery ladder for one failed call: its own session, the token's session, or the module. */
  private onCallFailed(slot: PoolSlot, job: QueuedJob, err: TokenError): void {
    const rung = failureRung(err);
    if (rung === 'fatal') return job.reject(err);
    this.opts.log?.warn({ ckr: err.ckr, fn: err.fn, rung }, 'PKCS#11 call on a pooled session failed; recovering');
    if (rung === 'library') {
      this.startDrain('library', slot.epoch, job.sentGeneration);
    } else if (KEY_LOST.has(err.ckr)) {
      this.startDrain('session', slot.epoch, job.sentGeneration);
    } else if (slot.idle) {
      this.dropSession(slot);
    } else {
      slot.closeWhenIdle = true;
    }
    this.retryOrFail(job, err);
  }

  private retryOrFail(job: QueuedJob, err: Error): void {
    if (job.attempts++ >= 1) {
      job.reject(err instanceof TokenUnavailableError ? err : new TokenUnavailableError(`${err.message} (after recovery)`));
      return;
    }
    // Retried ahead of newer calls: it has waited longest.
    this.queue.unshift(job);
  }

  private startDrain(rung: 'session' | 'library', epoch: number, generation: number): void {
    if (this.draining?.rung === 'library') return;
    this.draining = { rung, epoch, generation };
  }

  /** Runs once every thread is idle, so that no call is in flight while the module is re-initialized. */
  private finishDrain(): void {
    const { rung, epoch, generation } = this.draining!;
    this.draining = undefined;
    // Recover only what is still broken: another failure may have mended it since this one was seen.
    const stale = rung === 'library' ? this.host.moduleEpoch === epoch : this.host.generation === generation;
    if (stale) {
      try {
        this.host.recover(rung);
      } catch (err) {
        this.failQueued(err instanceof TokenUnavailableError ? err : new TokenUnavailableError((err as Error).message));
      }
    }
    this.dispatch();
  }

  private dropSession(slot: PoolSlot): void {
    if (slot.holdsSession(this.host.moduleEpoch)) this.host.closeSession(slot.session!);
    slot.session = undefined;
    slot.closeWhenIdle = false;
  }

  private failQueued(err: Error): void {
    for (const job of this.queue.splice(0)) job.reject(err);
  }

  private waitForSession(): void {
    if (this.sessionWait || this.closed) return;
    this.sessionWait = setTimeout(() => {
      this.sessionWait = undefined;
      this.dispatch();
    }, SESSION_WAIT_MS);
    this.sessionWait.unref();
  }

  private expireWaiting(): void {
    const limit = Date.now() - QUEUE_TIMEOUT_MS;
    while (this.queue.length && this.queue[0]!.enqueuedAt < limit) {
      this.queue.shift()!.reject(new TokenUnavailableError(`no PKCS#11 session became free within ${QUEUE_TIMEOUT_MS} ms`));
    }
  }
}

/** CK_RSA_PKCS_PSS_PARAMS (hashAlg, mgf, sLen) as a signing job's `iv`: three little-endian uint32s; no parameters, no bytes. */
export function encodeSignParameters(parameter: { hashAlg: number; mgf: number; saltLen: number } | undefined): Buffer {
  if (!parameter) return Buffer.alloc(0);
  const out = Buffer.alloc(12);
  out.writeUInt32LE(parameter.hashAlg, 0);
  out.writeUInt32LE(parameter.mgf, 4);
  out.writeUInt32LE(parameter.saltLen, 8);
  return out;
}
