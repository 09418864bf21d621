// RSS after 1,000,000 KV writes through the core (KV v1 engine, barrier, SoftHSM2, inmem storage
// over a fixed set of 10,000 keys, so stored data stays constant and growth means a leak), sampled
// after a GC every 100,000 writes. Baseline: RSS after the first 100,000 (warm JIT, full key set).
import { Token } from '../src/pkcs11/token.js';
import { report } from './result.js';
import { benchToken, unsealedCore } from './support.js';

const WRITES = Number(process.env.BENCH_MEMORY_WRITES ?? 1_000_000);
const KEYS = 10_000;
const STEP = WRITES / 10;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const { config, cleanup } = await benchToken();
const token = new Token(config);
try {
  const { core } = await unsealedCore(token);
  const mib = () => {
    gc();
    return process.memoryUsage().rss / 2 ** 20;
  };
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 1; i <= WRITES; i++) {
    const routed = core.router.route(`secret/k${i % KEYS}`)!;
    await routed.engine.handle({ operation: 'update', path: routed.path, data: { i, pad: 'x'.repeat(64) }, query: {} });
    if (i % STEP === 0) samples.push(mib());
  }
  const seconds = (performance.now() - started) / 1000;
  // Growth per 100,000 writes: least-squares slope over the samples after the first.
  const ys = samples.slice(1);
  const xs = ys.map((_, k) => k);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const slope = xs.reduce((a, x, k) => a + (x - mx) * (ys[k]! - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const perHundredK = (slope * 100_000) / STEP;
  report({
    name: `RSS after ${WRITES.toLocaleString('en-US')} KV writes vs after the first ${STEP.toLocaleString('en-US')}`,
    value: samples.at(-1)!,
    baseline: samples[0]!,
    unit: 'MiB',
    ratio: samples[0]! / samples.at(-1)!,
    note: `growth ${perHundredK.toFixed(2)} MiB per 100,000 writes; samples ${samples.map((s) => s.toFixed(0)).join(', ')}; ${Math.round(WRITES / seconds)} writes/s; lower is better`,
  });
  await core.seal();
} finally {
  token.disconnect();
  await cleanup();
}
