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

  const runClients = async (phase: string, ms: number): Promise<PhaseResult> => {
    const result: PhaseResult = { latencies: [], failures: [] };
    const until = Date.now() + ms;
    const timed = async (fn: () => Promise<Reply>, ok: number, what: string) => {
      const start = performance.now();
      const r = await fn().catch((err: Error) => ({ status: 0, body: { errors: [err.message] } }) as Reply);
      result.latencies.push(performance.now() - start);
      if (r.status !== ok) result.failures.push(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.status === ok ? r : undefined;
    };
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; Date.now() < until; i++) {
          const key = `load/${phase}/c${c}/${i % 50}`;
          if (await timed(() => call(base, 'PUT', `secret/${key}`, { token: root, body: { i } }), 204, `write ${key}`)) acked.set(key, i);
          const read = await timed(() => call(base, 'GET', `secret/${key}`, { token: root }), 200, `read ${key}`);
          if (read && read.body.data.i !== i) result.failures.push(`read ${key}: got ${JSON.stringify(read.body.data)}, wrote ${i}`);
        }
      }),
    );
    return result;
  };

  const quiet = await runClients('quiet', SECONDS * 1000);

  let rotations = 0;
  let newKeys: string[] = [];
  const opsFailures: string[] = [];
  let loadDone = false;
  const rotator = (async () => {
    while (!loadDone) {
      await sleep(ROTATE_EVERY_MS);
      if (loadDone) break;
      const r = await call(base, 'PUT', 'sys/rotate', { token: root });
      if (r.status === 204) rotations++;
      else opsFailures.push(`rotate: ${r.status}`);
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
  const busy = await runClients('busy', SECONDS * 1000);
  loadDone = true;
  await Promise.all([rotator, rekeyer]);

  expect(quiet.failures.slice(0, 5)).toEqual([]);
  expect(busy.failures.slice(0, 5)).toEqual([]);
  expect(opsFailures).toEqual([]);
  expect(rotations).toBeGreaterThanOrEqual(Math.floor(SECONDS / 5) - 1);
  expect(newKeys).toHaveLength(5);
  expect((await call(base, 'GET', 'sys/key-status', { token: root })).body.term).toBe(1 + rotations);

  // Every acknowledged write reads back; then the new shares, and only they, unseal.
  for (const [key, i] of acked) expect((await call(base, 'GET', `secret/${key}`, { token: root })).body?.data, key).toEqual({ i });
  await call(base, 'PUT', 'sys/seal', { token: root });
  for (const key of newKeys.slice(0, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
  expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: false, t: 3, n: 5 });

  const line = (r: PhaseResult) => `${r.latencies.length} requests, p50 ${p(r.latencies, 0.5).toFixed(1)} ms, p99 ${p(r.latencies, 0.99).toFixed(1)} ms`;
  console.log(
    `load, ${CLIENTS} clients, ${SECONDS} s per phase: without operations ${line(quiet)}; with ${rotations} rotations and a rekey ${line(busy)}; p99 ratio ${(p(busy.latencies, 0.99) / p(quiet.latencies, 0.99)).toFixed(2)}; ${acked.size} acknowledged keys read back`,
  );
}, 120_000 + SECONDS * 4000);
