import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, expect, it } from 'vitest';
import { type FreshServer, startServerProcess } from './support/process.js';
import { call, initAndUnseal, type Reply } from './support/service.js';

// Load with operations: clients write and read continuously, first without operations (the
// baseline), then while rotate runs every ROTATE_EVERY_MS and one full rekey happens halfway.
// CI runs a short profile; `npm run load` runs the full one (50 clients, 60 s).
const SECONDS = Number(process.env.KEYWARD_LOAD_SECONDS ?? 8);
const CLIENTS = Number(process.env.KEYWARD_LOAD_CLIENTS ?? 50);
const ROTATE_EVERY_MS = 5000;
// Rotations start at 5 s, 10 s, ... into the busy phase, every one before its planned end (11 in 60 s).
const ROTATIONS = Math.max(1, Math.ceil((SECONDS * 1000) / ROTATE_EVERY_MS) - 1);
const WARMUP_MS = 2000;
// Operations must not slow the service down: p99 with them at most this multiple of p99 without.
// Measured here: 0.97 over 60 s phases; 8 s phases on a 2-core machine shared with other test files
// gave 0.65 to 1.41. A slowdown that requests pay once operations have run (every write waiting for a
// keyring write after the rotation at 5 s, say) gave 2.46 though it covered only the last 3 s. A single
// stall does not move a p99: each of the CLIENTS closed-loop clients waits in it once, under 1 % of the requests.
const MAX_P99_RATIO = 2;

interface PhaseResult {
  latencies: number[];
  failures: string[];
}

function p(latencies: number[], q: number): number {
  const s = [...latencies].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))] ?? 0;
}

let kw: FreshServer | undefined;
afterAll(() => kw?.server.stop());

it(`serves ${CLIENTS} clients without a failed request while rotate runs every 5 s and a rekey happens midway (${SECONDS} s per phase)`, async () => {
  kw = await startServerProcess();
  const base = kw.server.url;
  const { keys, root } = await initAndUnseal(base, 3, 2);
  const acked = new Map<string, number>();

  /** Every client writes then reads back its keys, in a loop, until `done()`. */
  const runClients = async (phase: string, done: () => boolean): Promise<PhaseResult> => {
    const result: PhaseResult = { latencies: [], failures: [] };
    const timed = async (fn: () => Promise<Reply>, ok: number, what: string) => {
      const start = performance.now();
      const r = await fn().catch((err: Error) => ({ status: 0, body: { errors: [err.message] } }) as Reply);
      result.latencies.push(performance.now() - start);
      if (r.status !== ok) result.failures.push(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.status === ok ? r : undefined;
    };
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; !done(); i++) {
          const key = `load/${phase}/c${c}/${i % 50}`;
          if (await timed(() => call(base, 'PUT', `secret/${key}`, { token: root, body: { i } }), 204, `write ${key}`)) acked.set(key, i);
          const read = await timed(() => call(base, 'GET', `secret/${key}`, { token: root }), 200, `read ${key}`);
          if (read && read.body.data.i !== i) result.failures.push(`read ${key}: got ${JSON.stringify(read.body.data)}, wrote ${i}`);
        }
      }),
    );
    return result;
  };
  const forMs = (ms: number) => {
    const until = Date.now() + ms;
    return () => Date.now() >= until;
  };

  // The first seconds pay for JIT compilation and cold caches; neither phase should carry them.
  const warmup = await runClients('warmup', forMs(WARMUP_MS));
  const quiet = await runClients('quiet', forMs(SECONDS * 1000));

  let rotateCalls = 0;
  let rotations = 0;
  let newKeys: string[] = [];
  const opsFailures: string[] = [];
  const busyStart = Date.now();
  const rotator = (async () => {
    for (let k = 1; k <= ROTATIONS; k++) {
      await sleep(Math.max(0, busyStart + k * ROTATE_EVERY_MS - Date.now()));
      const r = await call(base, 'PUT', 'sys/rotate', { token: root });
      rotateCalls++;
      if (r.status === 204) rotations++;
      else opsFailures.push(`rotate ${k}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  })();
  const rekeyer = (async () => {
    await sleep((SECONDS * 1000) / 2);
    const start = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    let done: Reply | undefined;
    for (const key of keys.slice(0, 2)) done = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: start.body.nonce } });
    if (!done?.body?.complete) opsFailures.push(`rekey: ${JSON.stringify(done?.body)}`);
    else newKeys = done.body.keys;
  })();
  // The load goes on until the phase is over and every operation has finished, so all of them run under it.
  let opsDone = false;
  const ops = Promise.all([rotator, rekeyer]).finally(() => (opsDone = true));
  const phaseOver = forMs(SECONDS * 1000);
  const busy = await runClients('busy', () => phaseOver() && opsDone);
  await ops;

  expect(warmup.failures.slice(0, 5)).toEqual([]);
  expect(quiet.failures.slice(0, 5)).toEqual([]);
  expect(busy.failures.slice(0, 5)).toEqual([]);
  expect(opsFailures).toEqual([]);
  expect(rotateCalls).toBe(ROTATIONS);
  expect(rotations).toBe(ROTATIONS);
  expect(newKeys).toHaveLength(5);
  expect((await call(base, 'GET', 'sys/key-status', { token: root })).body.term).toBe(1 + ROTATIONS);

  // Every acknowledged write reads back; then the new shares, and only they, unseal.
  for (const [key, i] of acked) expect((await call(base, 'GET', `secret/${key}`, { token: root })).body?.data, key).toEqual({ i });
  await call(base, 'PUT', 'sys/seal', { token: root });
  for (const key of newKeys.slice(0, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
  expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: false, t: 3, n: 5 });

  const line = (r: PhaseResult) => `${r.latencies.length} requests, p50 ${p(r.latencies, 0.5).toFixed(1)} ms, p99 ${p(r.latencies, 0.99).toFixed(1)} ms`;
  const ratio = p(busy.latencies, 0.99) / p(quiet.latencies, 0.99);
  console.log(
    `load, ${CLIENTS} clients, ${SECONDS} s per phase: without operations ${line(quiet)}; with ${rotations} rotations and a rekey ${line(busy)}; p99 ratio ${ratio.toFixed(2)}; ${acked.size} acknowledged keys read back`,
  );
  expect(ratio, `p99 with operations / p99 without (bound ${MAX_P99_RATIO})`).toBeLessThanOrEqual(MAX_P99_RATIO);
}, 120_000 + WARMUP_MS + SECONDS * 4000);
