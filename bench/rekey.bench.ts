// Rekey latency with few and with many stored entries, same run: rekey re-encrypts the keyring,
// never the data, so the ratio should stay near 1.
import type { Core } from '../src/core/core.js';
import { Token } from '../src/pkcs11/token.js';
import { report } from './result.js';
import { benchToken, median, unsealedCore } from './support.js';

const SMALL = 10;
const LARGE = Number(process.env.BENCH_REKEY_ENTRIES ?? 100_000);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 15);

const { config, cleanup } = await benchToken();
const token = new Token(config);

/** One whole rekey to a single share (start, then every current share), returning the new share. */
async function rekeyToOneShare(core: Core, current: string[]): Promise<string[]> {
  const started = await core.locked(() => core.rekey.start({ secretShares: 1, secretThreshold: 1, pgpKeys: [], backup: false, requireVerification: false }));
  let result;
  for (const key of current) result = await core.locked(() => core.rekey.update(key, started.nonce));
  if (!result || !('complete' in result)) throw new Error('rekey did not complete');
  return result.keys;
}

/** A cluster with `entries` stored values, already rekeyed a few times (untimed warm-up). */
async function cluster(entries: number): Promise<{ core: Core; shares: string[] }> {
  const { core, keys } = await unsealedCore(token);
  const value = Buffer.from(JSON.stringify({ password: 'x'.repeat(64) }));
  for (let i = 0; i < entries; i++) await core.barrier.put(`logical/bench/entry-${i}`, value);
  let shares = await rekeyToOneShare(core, keys.slice(0, 2));
  for (let w = 0; w < 5; w++) shares = await rekeyToOneShare(core, shares);
  return { core, shares };
}

// Trials alternate between the two clusters so that drift affects both alike.
const clusters = [await cluster(SMALL), await cluster(LARGE)];
const times: number[][] = [[], []];
for (let t = 0; t < TRIALS; t++) {
  for (const [i, c] of clusters.entries()) {
    const start = performance.now();
    c.shares = await rekeyToOneShare(c.core, c.shares);
    times[i]!.push(performance.now() - start);
  }
}
for (const c of clusters) await c.core.shutdown();
const small = median(times[0]!);
const large = median(times[1]!);
console.log(`rekey latency (SoftHSM2, inmem storage, median of ${TRIALS} rekeys)`);
console.log(
  `  ${SMALL} entries: ${small.toFixed(2)} ms   ${LARGE.toLocaleString('en-US')} entries: ${large.toFixed(2)} ms   ratio ${(large / small).toFixed(2)} (target ≤ 1.2)`,
);
report({ name: `rekey latency, ${LARGE.toLocaleString('en-US')} vs ${SMALL} entries`, value: large, baseline: small, unit: 'ms', ratio: large / small, target: '≤ 1.2' });
token.disconnect();
await cleanup();
