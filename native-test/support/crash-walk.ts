import { once } from 'node:events';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { freePort, type ServerProcess, spawnServer, writeConfig } from './process.js';
import { call } from './service.js';
import { type TestToken } from './softhsm.js';

/** A stopped, initialized server: each crash run starts a server on a copy of its storage. */
export interface Baseline {
  token: TestToken;
  dir: string;
  shares: string[];
  root: string;
}

/** A run killed before one of its physical writes. */
export interface CrashPoint {
  /** The write it was killed before: its number in the run, and `journal`, `rename <key>` or `delete <key>`. */
  n: number;
  write: string;
  /**
   * Journal writes the run made before it. A batch is committed once its journal is on disk, so
   * a restart must find it applied (the journal is replayed at open), acknowledged or not.
   */
  journals: number;
  /** Whether the client had the operation's reply before the crash. */
  acknowledged: boolean;
}

export interface Walk {
  points: CrashPoint[];
  /** The writes of the run that completed (armed past its last write), in order. */
  writes: string[];
}

type Operation = (url: string) => Promise<boolean>;
type Check = (url: string, point: CrashPoint, storage: string) => Promise<void>;

export interface WalkOptions {
  /** Unseal with the baseline's shares before the operation (default true). */
  unsealFirst?: boolean;
  /** After each crash, check the restarted server still unseals with them (default true). */
  unsealAfter?: boolean;
}

/** Every operation walked here makes fewer writes; more means the walk would never end. */
const MAX_WRITES = 60;

/** Unseals with the given shares from a clean start; true when the server ends up unsealed. */
export async function unsealsWith(url: string, shares: string[]): Promise<boolean> {
  await call(url, 'PUT', 'sys/unseal', { body: { reset: true } });
  let last;
  for (const key of shares) last = await call(url, 'PUT', 'sys/unseal', { body: { key } });
  return last?.status === 200 && last.body.sealed === false;
}

/**
 * Kills the server before its Nth physical write during `op`, for N = 1, 2, … until a run
 * completes `op`; after each crash restarts on the same storage and runs `check` with the crash
 * point (`storage` is that run's storage directory). The file backend names each write on stderr
 * while armed, so every run reports what it wrote, and a crash must be at the write it was armed
 * for. The caller asserts the writes and the points against what the operation writes.
 */
export async function walk(base: Baseline, op: Operation, check: Check, opts: WalkOptions = {}): Promise<Walk> {
  const points: CrashPoint[] = [];
  for (let n = 1; n <= MAX_WRITES; n++) {
    const run = await crashRun(base, n, op, check, opts);
    if (!run.point) return { points, writes: run.writes };
    points.push(run.point);
  }
  throw new Error(`the operation never completed within ${MAX_WRITES} writes`);
}

/** One run armed at write `n`: its crash point (checked after a restart), or none when it completed `op`; and its writes. */
async function crashRun(base: Baseline, n: number, op: Operation, check: Check, opts: WalkOptions): Promise<{ point?: CrashPoint; writes: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-walk-'));
  const storage = join(dir, 'storage');
  try {
    await cp(join(base.dir, 'storage'), storage, { recursive: true });
    const port = await freePort();
    const config = await writeConfig(dir, base.token, port);
    const { crashed, acknowledged, writes } = await armedRun(base, config, port, n, op, opts);
    if (!crashed) {
      expect(writes.length, `armed at write ${n}: the run completed, so it made fewer writes`).toBeLessThan(n);
      return { writes };
    }
    expect(writes.length, `armed at write ${n}: the crash came at that write (${writes.join(', ')})`).toBe(n);
    const point = { n, write: writes[n - 1]!, journals: writes.slice(0, n - 1).filter((w) => w === 'journal').length, acknowledged };
    const again = await spawnServer(config, base.token, port);
    try {
      if (opts.unsealAfter ?? true) expect(await unsealsWith(again.url, base.shares.slice(1, 4)), `crash at write ${n}: the shares still unseal`).toBe(true);
      await check(again.url, point, storage);
    } finally {
      await again.kill();
    }
    return { point, writes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `op` on a server armed to crash before write `n`; either it crashed there, or `op` completed. */
async function armedRun(base: Baseline, config: string, port: number, n: number, op: Operation, opts: WalkOptions) {
  const server = await spawnServer(config, base.token, port, { KEYWARD_TEST_CRASH_AT_WRITE: String(n) });
  let acknowledged = false;
  let crashed = false;
  try {
    if (opts.unsealFirst ?? true) expect(await unsealsWith(server.url, base.shares.slice(0, 3)), `armed at write ${n}: unseal before the operation`).toBe(true);
    let failure: unknown;
    try {
      acknowledged = await op(server.url);
    } catch (err) {
      // The connection died with the process, unless the process is still alive (checked next).
      failure = err;
    }
    // Work after an acknowledgement (an init confirmed, a rekey switched once its reply left) may
    // still crash: a server that no longer answers is waited for.
    const alive = acknowledged && (await call(server.url, 'GET', 'sys/seal-status').then(() => true, () => false));
    if (!alive) await Promise.race([server.exited, new Promise((r) => setTimeout(r, 10_000))]);
    crashed = server.child.exitCode !== null || server.child.signalCode !== null;
    if (crashed) expect(server.child.signalCode, `armed at write ${n}: the process ended by its crash hook`).toBe('SIGKILL');
    else expect(acknowledged, `armed at write ${n}: no crash, so the operation must complete (${String(failure ?? 'it answered with a failure')})`).toBe(true);
  } finally {
    await server.kill();
  }
  return { crashed, acknowledged, writes: await writesOf(server) };
}

/** The writes an ended server process named on stderr, checked to be numbered 1, 2, … in order. */
async function writesOf(server: ServerProcess): Promise<string[]> {
  // Output still in the pipes after the exit arrives before they close.
  await Promise.all([server.child.stdout!, server.child.stderr!].map((s) => (s.closed ? undefined : once(s, 'close'))));
  const lines = [...server.output().matchAll(/keyward test write (\d+): ([^\n]*)/g)];
  expect(lines.map((m) => Number(m[1])), 'writes are numbered in order').toEqual(lines.map((_, i) => i + 1));
  return lines.map((m) => m[2]!);
}
