// `npm run bench`: runs every benchmark (each in its own process, so SoftHSM2 and the JIT start
// clean), prints one table with each target's verdict and writes it to docs/BENCHMARKS.md with the
// machine, versions, load and date. `--only rekey,rotate` runs some of them (and leaves the doc
// alone); `--check` exits non-zero when a target is missed.
import { execFileSync, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchRow } from './result.js';
import { describeTarget, exitCode, missedRows, verdict } from './verdict.js';

const root = join(import.meta.dirname, '..');
const BENCHES = ['barrier', 'rekey', 'rotate', 'http', 'hsm', 'transit', 'ha', 'memory', 'cli'];

const { values: flags } = parseArgs({ options: { check: { type: 'boolean', default: false }, only: { type: 'string' } } });
const selected = flags.only?.split(',') ?? BENCHES;
const unknown = selected.filter((name) => !BENCHES.includes(name));
if (unknown.length) throw new Error(`unknown bench ${unknown.join(', ')}; there are ${BENCHES.join(', ')}`);

function run(name: string): Promise<BenchRow[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', `file://${root}/node_modules/tsx/dist/loader.mjs`, join(root, 'bench', `${name}.bench.ts`)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const rows: BenchRow[] = [];
    let buffered = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith('RESULT ')) rows.push(JSON.parse(line.slice(7)) as BenchRow);
        else process.stdout.write(`  ${line}\n`);
      }
    });
    child.on('exit', (code) => (code === 0 ? resolve(rows) : reject(new Error(`bench ${name} exited with ${code}`))));
  });
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    return 'not found';
  }
}

const started = Date.now();
const loadAtStart = loadavg()[0]!;
const rows: BenchRow[] = [];
for (const name of selected) {
  console.log(`== ${name}`);
  rows.push(...(await run(name)));
}
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
const lines = [
  '| benchmark | keyward | baseline (same run) | unit | ratio | target | verdict | note |',
  '|---|---:|---:|---|---:|---|---|---|',
  ...rows.map(
    (r) => `| ${r.name} | ${fmt(r.value)} | ${fmt(r.baseline)} | ${r.unit} | ${r.ratio.toFixed(2)} | ${describeTarget(r.target, r.unit)} | ${verdict(r)} | ${r.note ?? ''} |`,
  ),
];
const table = lines.join('\n');
const loadAtEnd = loadavg()[0]!;
console.log(`\n${table}\n\n(${((Date.now() - started) / 1000).toFixed(0)} s; 1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadAtEnd.toFixed(1)} at the end)`);
const missed = missedRows(rows);
for (const r of missed) console.log(`missed: ${r.name} (ratio ${r.ratio.toFixed(2)}, value ${fmt(r.value)} ${r.unit}; target ${describeTarget(r.target, r.unit)})`);
if (flags.check) console.log(`--check: ${missed.length ? `${missed.length} target(s) missed` : 'every target met'}`);
process.exitCode = exitCode(rows, flags.check);
if (flags.only) {
  console.log('not writing docs/BENCHMARKS.md: --only ran part of the benchmarks');
} else {
  await writeDoc(table);
}

/**
 * Says so when other work shared the machine, since absolute figures then drop and scatter. Judged
 * at the start: by the end the average includes the benchmarks' own load.
 */
function loadLine(): string {
  const load = `1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadAtEnd.toFixed(1)} at the end, on ${cpus().length} cores`;
  if (loadAtStart < 1) return `Load: ${load} (the end figure includes the benchmarks themselves).`;
  return `Load: ${load}: other work shared the machine, so absolute figures are lower and noisier than on an idle one; the ratios, against baselines measured alongside, are what the targets judge.`;
}

/** docs/BENCHMARKS.md: the table with the machine, versions, load and date, and how to read it. */
async function writeDoc(table: string): Promise<void> {
  const cpu = cpus();
  const doc = `# Benchmarks

Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}. Every ratio compares keyward with a
limit measured in the same run on the same machine: the raw pkcs11js loop on the same key or
replaying the same PKCS#11 calls, node:crypto, a bare fastify route doing the same PKCS#11
decryptions and serving the same JSON, a bare durable file write, the same operation on
SoftHSM2 directly or the physical limit of an emulated network HSM, or the same operation on a
smaller data set. For latencies (lower is better) the ratio is baseline/value, so higher is
better, except for rekey and rotate on a large against a small data set, where it is large/small
and the target bounds it from above.

Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}.
Versions: Node ${process.version}, SoftHSM2 ${version('softhsm2-util', ['--version'])}, keyward ${JSON.parse(execFileSync('node', ['-p', `JSON.stringify(require('${root}/package.json').version)`], { encoding: 'utf8' }))}.
${loadLine()}

${table}

## Targets and verdicts

A row with a target is **met** or **missed** by its figure in this run alone: the ratio, or for
standby pickup and failover the value in milliseconds, unrounded (a ratio shown as 0.50 can miss
≥ 0.5). A figure that could not be measured (NaN) is missed. Rows without a target say
\`no target\`: they are context, such as how far node:crypto is ahead. \`npm run bench\` lists the
missed rows after the table and exits 0; \`npm run bench -- --check\` exits 1 when any target is
missed. \`npx tsx bench/run.ts --only rekey,rotate\` runs some of the benchmarks (${BENCHES.join(', ')})
and leaves this file alone; \`BENCH_REKEY_ENTRIES\`, \`BENCH_ROTATE_ENTRIES\`,
\`BENCH_REWRAP_ROUNDS\`, \`BENCH_TRIALS\`, \`BENCH_MEMORY_WRITES\` and \`BENCH_HTTP_SECONDS\` (each
HTTP load, 5 by default; http and hsm) make a quick run smaller. The verdict logic is
\`bench/verdict.ts\`, tested in \`test/bench-verdict.test.ts\`.

## Baselines outside the path under test

Rekey and rotate at 100,000 entries against 10 or 100, and rewrap against the raw barrier get+put
loop, compare a path with itself: a rekey slower at every size, or a barrier slower under both
rewrap and its baseline, leaves those ratios where they were. Each of them therefore also has a
baseline that does not go through keyward's code, and a target chosen from runs on a loaded
machine (load average 15–20 on 2 cores) and from the regression it is there to catch, injected
by hand for the measurement:

- **Rekey and rotate against a raw replay of their PKCS#11 calls.** \`bench/call-recorder.ts\`
  records every PKCS#11 call the process makes; a rekey made 19 (rebuild and check the old root:
  unwrap by key transport (an RSA-OAEP unwrap with the session's transport pair, made at unseal),
  wrap, destroy, unwrap, two probe encryptions, destroy; then a random, the new root the
  same way, the keyring encrypted under it and the root-key entry under the active term, and the
  old root destroyed), a rotation 6 (generate, wrap, destroy, unwrap, encrypt the keyring). Those
  sequences are fixed in the benches as recipes, and \`bench/raw-token.ts\` replays a recipe on
  its own session with pkcs11js alone, interleaved with the timed rekeys or rotations. The recipe
  is fixed on purpose: a rekey that started re-encrypting entries, or rebuilt the root twice,
  makes more calls and takes longer while its baseline stays put. Each run records the calls once
  more and says in the note whether they still match the recipe. These rows compare the fastest
  of 41 of each: both sides are a fixed amount of work, and under load the fastest trial is the
  one least disturbed by the scheduler and the garbage collector, where medians drifted with the
  load (a rotation's median ratio went from 0.72 to 0.48 between two runs). Rekey ≥ 0.7: measured
  0.85–0.89, and 0.52 with the root key imported twice (100,000 vs 10 stayed at 0.96). Rotate ≥
  0.6: measured 0.71–0.76, and 0.45 with the term key generated twice (100,000 vs 100 stayed at
  1.04).
- **Rewrap against the raw PKCS#11 decrypt+encrypt loop**: per entry, one GCM decryption and one
  encryption of the entry's size on the term key, with pkcs11js alone. Rewrap does that plus a
  storage read, a compare-and-swap and its job bookkeeping, yielding to the event loop after each
  entry. This ratio is per CPU second: all of it is synchronous work on one thread over inmem
  storage, so CPU time is its cost, where wall time also counts whatever else the machine ran
  meanwhile. Target ≥ 0.55: measured 0.60–0.69, and 0.50 with every token decryption done twice
  (which slows the barrier loop as much, so rewrap against it stayed at 0.85). The wall-clock
  ratio against the barrier loop, which also sees a rewrap that idles, has target ≥ 0.6
  (measured 0.69–0.95). The contenders alternate in rounds of 4,000 entries after an untimed
  warm-up round (the first rewrap costs about four times a later one), so load from elsewhere
  hits all of them alike; with fewer entries per round the job's fixed cost lowers the ratio.

## Network HSM latency (hsm)

\`bench/hsm.bench.ts\` runs keyward on the HSM emulator (docs/HSM.md), which sleeps 0, 250 or
1000 µs before every PKCS#11 call, with \`max_parallel = 32\` (and at 0 µs also the default, which
measures the round trip at connect and stays on the event loop), on inmem storage so the token is
the only slow part. Each KV v2 read or write row is judged against the lower of two limits: the
**physical limit**, calls in flight (max_parallel, or fewer when the connections' requests cannot
have that many: a read's two decryptions run one after the other, a write's two encryptions
together) divided by the calls per request times the round trip, with the calls per request
counted by the emulator around 100 sequential requests (not assumed); and keyward on SoftHSM2
directly with its default config, at the same connections in the same run (half of its load before
the emulated ones, half after). During every load a second client on its own thread asks
\`/v1/sys/health\` 100 times a second, open loop (about 500 probes per load, so their p99 is a
percentile and not the slowest probe), and the row's note gives its p99, with keyward's CPU time
per request. The issue's targets, at 1000 µs with 50 connections: reads ≥ 0.6 of that
lower limit, no failed request and health p99 ≤ 20 ms, as three rows. On SoftHSM2 the default
config must keep ≥ 0.9 of \`max_parallel = 0\`, the synchronous path, at each connection count.

## Transit (transit) and CLI start-up (cli)

\`bench/transit.bench.ts\` runs transit encrypt (64 B) and ECDSA P-256 signing over HTTP: on
SoftHSM2 in-process against the raw pkcs11js loop making the same calls on its own session (no
HTTP: the ratio is what HTTP, authorization and the engine cost per call), and on the emulator at
1 ms per call with \`max_parallel = 32\` against its physical limit (calls per request counted by
the emulator); encryption by \`batch_input\` of 1,000 items in items per second against the
same (the issue's targets: ≥ 0.7 of the raw loop in-process, ≥ 0.6 of the physical limit on the
emulator); and one \`batch_input\` of 100 encryptions against 100 single requests on one
connection. \`bench/cli.bench.ts\` times \`keyward version\` and \`keyward kv get\` against
\`node -e 0\` in the same run (medians of interleaved runs; issue target: \`kv get\` ≤ 0.15 s and
≤ 3× \`node -e 0\`).

## Where the time goes (targets not met)

- **HTTP KV v2 read** (target ≥ 0.7 of the floor, \`bench/floor-server.mjs\`: a bare fastify
  route making the same two GCM decryptions, of the sizes of the secret's stored metadata and
  version entries with their storage paths as AAD, on an AES-256 session key in a logged-in
  session on the same token, synchronously, and returning the same JSON). The target cannot be
  met at 10 and 50 connections by any server that does what a key service must, and the
  calibration rows show it in every run: the floor route plus nothing but a token lookup by HMAC,
  \`JSON.parse\` of its two decrypted entries and \`JSON.stringify\` of the reply
  (\`floor-server.mjs --essentials\`) measured 0.58–0.60 of the floor there on 2026-12-04 (0.68–0.74
  in shell runs of the two servers alone), and 0.84 at 1 connection. The floor is so cheap (about
  43 µs of CPU per request, half of it the two decryptions) that any added work costs more than
  its share: the floor route with a busy-wait of 10 µs per request gave 0.69 of itself at 10
  connections, 20 µs 0.58, 45 µs 0.42 (the client shares the machine's two cores, and a slower
  server also pays more per request to wake it). Measured by elimination in keyward's own server
  at 10 connections (process CPU per request over 20,000 reads, 2026-12-04): as it is, 91–95 µs;
  with the logical route answering the JSON as soon as it runs (so fastify, every hook, the token
  lookup and the wrap, audit and help checks still run), 20–22 µs, about the floor without its
  decryptions; with the KV v2 engine's read run and its answer discarded, 86–88 µs. So the
  engine's read is the cost, not the HTTP layer: timed inside the server it takes 35 µs (25.7 in a
  tight in-process loop), of which the two decryptions are about 18 and the rest the entry cache,
  the value header, two \`JSON.parse\` calls and its promise chain, each a microsecond or two. An
  HMAC from copied SHA-256 states instead of \`createHmac\` measured slower (2.0 against 1.3 µs) and
  callback hooks in place of fastify's async ones no different; neither was kept.
- **HTTP KV v2 write on file storage** (target ≥ 0.6). A KV v2 write is a transaction of two
  entries: group commit shares one journal fsync among concurrent writers, but each entry is still
  its own file to create, rename and fsync, where the bare route writes one. A write-ahead log
  with periodic checkpoints instead of a file per entry would close it.
- **Barrier put+get, 64 B and 1 KiB** (target ≥ 0.85). About 2.5 µs per put+get of the
  barrier's own work (AAD, framing, two storage promises) on top of about 29 µs of PKCS#11.
- **Transit encrypt in the engine** (target ≥ 0.7 of the raw loop; 0.68–0.71 from run to run on
  2026-12-03). Per item about 11.8 µs against the raw loop's 8.2. Measured apart with keyward's
  Token alone: \`token.encrypt\` with reused buffers runs at the raw loop's rate; with a fresh output
  buffer per item, 0.4 µs more; with the plaintext decoded from base64 and the ciphertext encoded
  to it, as the API has them, 1.8 µs more. The engine's own work (version checks, the encryption
  count, the nonce, the answer) is about 0.5 µs of what is left.
- **Health p99 on the emulator at 1 ms** (target ≤ 20 ms): the same code gave 53.7 ms and 13.1 ms
  in two full runs on 2026-12-03, and 10.6 and 17.5 ms in two runs of that row alone; the
  in-process server under the same load gave 20–101 ms. With about 500 probes per load the p99
  is the fifth-slowest probe: a scheduling or collection pause of the load's length decides it.
- **Cold start** (no target): the HCL parser's WebAssembly (~160 ms), loading fastify, pkcs11js
  and the rest (~390 ms) and building the routes (~150 ms), against a bare fastify process.
`;
  await writeFile(join(root, 'docs', 'BENCHMARKS.md'), doc);
  console.log('wrote docs/BENCHMARKS.md');
}
