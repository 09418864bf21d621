// Rotate latency with 100 and with 100,000 stored entries (rotation never touches data), and
// rewrap throughput against the raw barrier get+put loop over the same entries, same run.
import { pino } from 'pino';
import { Core } from '../src/core/core.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { report } from './result.js';
import { benchToken, median } from './support.js';

const SMALL = 100;
const LARGE = Number(process.env.BENCH_ROTATE_ENTRIES ?? 100_000);
const REWRAP_ENTRIES = Number(process.env.BENCH_REWRAP_ENTRIES ?? 20_000);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 15);

const { config, cleanup } = await benchToken();
const token = new Token(config);
const value = Buffer.from(JSON.stringify({ password: 'x'.repeat(64) }));

async function cluster(entries: number): Promise<Core> {
  const core = new Core({ storage: new InmemBackend(), token, generateKey: true, log: pino({ level: 'silent' }), rewrapMaxRate: 0 });
  const init = await core.init(1, 1);
  await core.unseal(init.keys[0]!.toString('hex'), false);
  for (let i = 0; i < entries; i++) await core.barrier.put(`logical/bench/entry-${i}`, value);
  for (let w = 0; w < 5; w++) await core.rotate();
  return core;
}

// Rotation latency, alternating between the two clusters.
const clusters = [await cluster(SMALL), await cluster(LARGE)];
const times: number[][] = [[], []];
for (let t = 0; t < TRIALS; t++) {
  for (const [i, core] of clusters.entries()) {
    const start = performance.now();
    await core.rotate();
    times[i]!.push(performance.now() - start);
  }
}
for (const core of clusters) await core.shutdown();
const small = median(times[0]!);
const large = median(times[1]!);
console.log(`rotate latency (SoftHSM2, inmem storage, median of ${TRIALS} rotations)`);
console.log(`  ${SMALL} entries: ${small.toFixed(2)} ms   ${LARGE.toLocaleString('en-US')} entries: ${large.toFixed(2)} ms   ratio ${(large / small).toFixed(2)} (target ≤ 1.2)`);

report({ name: `rotate latency, ${LARGE.toLocaleString('en-US')} vs ${SMALL} entries`, value: large, baseline: small, unit: 'ms', ratio: large / small, target: '≤ 1.2' });

// Rewrap throughput against the raw barrier loop doing the same get + re-encrypting put.
const core = await cluster(REWRAP_ENTRIES);
let start = performance.now();
for (let i = 0; i < REWRAP_ENTRIES; i++) {
  const path = `logical/bench/entry-${i}`;
  await core.barrier.put(path, (await core.barrier.get(path))!);
}
const rawRate = REWRAP_ENTRIES / ((performance.now() - start) / 1000);
await core.rotate();
start = performance.now();
await core.rewrap.start();
while (core.rewrap.status().state === 'running') await new Promise((r) => setTimeout(r, 20));
const rewrapRate = core.rewrap.status().total / ((performance.now() - start) / 1000);
console.log(`rewrap throughput (${REWRAP_ENTRIES.toLocaleString('en-US')} entries, no rate limit, 4 in flight)`);
console.log(`  raw barrier get+put: ${Math.round(rawRate).toLocaleString('en-US')} entries/s   rewrap: ${Math.round(rewrapRate).toLocaleString('en-US')} entries/s   ratio ${(rewrapRate / rawRate).toFixed(2)}`);
report({ name: `rewrap vs raw barrier get+put, ${REWRAP_ENTRIES.toLocaleString('en-US')} entries`, value: rewrapRate, baseline: rawRate, unit: 'entries/s', ratio: rewrapRate / rawRate });
await core.shutdown();
token.disconnect();
await cleanup();
