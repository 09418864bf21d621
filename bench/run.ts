// `npm run bench`: runs every benchmark (each in its own process, so SoftHSM2 and the JIT start
// clean), prints one table and writes it to docs/BENCHMARKS.md with the machine, versions and date.
import { execFileSync, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchRow } from './result.js';

const root = join(import.meta.dirname, '..');
const BENCHES = ['barrier', 'rekey', 'rotate', 'http', 'ha', 'memory'];

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
const rows: BenchRow[] = [];
for (const name of BENCHES) {
  console.log(`== ${name}`);
  rows.push(...(await run(name)));
}
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
const lines = [
  '| benchmark | keyward | baseline (same run) | unit | ratio | target | note |',
  '|---|---:|---:|---|---:|---|---|',
  ...rows.map((r) => `| ${r.name} | ${fmt(r.value)} | ${fmt(r.baseline)} | ${r.unit} | ${r.ratio.toFixed(2)} | ${r.target ?? ''} | ${r.note ?? ''} |`),
];
const table = lines.join('\n');
console.log(`\n${table}\n\n(${((Date.now() - started) / 1000).toFixed(0)} s)`);

const cpu = cpus();
const doc = `# Benchmarks

Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}. Every ratio compares keyward with a
limit measured in the same run on the same machine: the raw pkcs11js loop on the same key,
node:crypto, a bare fastify route serving the same JSON, a bare durable file write, or the same
operation on a smaller data set. For latencies (lower is better) the ratio is baseline/value.

Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}.
Versions: Node ${process.version}, SoftHSM2 ${version('softhsm2-util', ['--version'])}, keyward ${JSON.parse(execFileSync('node', ['-p', `JSON.stringify(require('${root}/package.json').version)`], { encoding: 'utf8' }))}.

${table}

## Where the time goes (targets not met)

- **HTTP KV v2 read** (target ≥ 0.5). keyward is CPU-bound on one core. A CPU profile of the
  server under 10 connections gives about a fifth of its time to the two PKCS#11 decryptions a
  KV v2 read needs (metadata, then the version; the raw pkcs11js loop above is the floor), about
  a sixth to the socket write that the bare route pays as well, and the rest to token HMAC,
  routing, JSON and fastify's hooks. The bare route decrypts nothing and serves a constant
  string, so at 10 and 50 connections, where it uses both cores, it stays near ten times ahead.
  What would close the gap: fewer token calls per read (one C_Decrypt without C_DecryptInit is
  not offered by PKCS#11 for GCM), or serving reads from more processes (standbys already do).
- **HTTP KV v2 write on file storage** (target ≥ 0.6). A KV v2 write is a transaction of two
  entries: group commit shares one journal fsync among concurrent writers, but each entry is still
  its own file to create, rename and fsync, where the bare route writes one. A write-ahead log
  with periodic checkpoints instead of a file per entry would close it.
- **Barrier put+get, 64 B and 1 KiB** (target ≥ 0.85). About 2.5 µs per put+get of the
  barrier's own work (AAD, framing, two storage promises) on top of about 29 µs of PKCS#11.
- **Cold start**: the HCL parser's WebAssembly (~160 ms), loading fastify, pkcs11js and the
  rest (~390 ms) and building the routes (~150 ms), against a bare fastify process.
`;
await writeFile(join(root, 'docs', 'BENCHMARKS.md'), doc);
console.log('wrote docs/BENCHMARKS.md');
