// CLI start-up: `keyward version` and `keyward kv get` against a running server, each against
// `node -e 0` measured in the same run, interleaved round by round so load from elsewhere hits all
// three alike; medians of BENCH_CLI_RUNS (21) runs each. The CLI runs as a user runs it, through
// scripts/keyward: from dist/ when it is up to date (`npm run bench` builds it), else through tsx,
// which the rows' note then says, since those figures are not the CLI's.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report } from './result.js';
import { benchToken, median, waitForHttp } from './support.js';

const root = join(import.meta.dirname, '..');
const keyward = join(root, 'scripts', 'keyward');
const RUNS = Math.max(10, Number(process.env.BENCH_CLI_RUNS ?? 21));
/** The targets for a client command: at most 3× `node -e 0` in the same run, and at most 150 ms. */
const TIMES_NODE = 3;
const KV_GET_MS = 150;

/** Whether scripts/keyward will run dist/ (built after every source change), by the launcher's own test. */
function distIsCurrent(): boolean {
  const built = join(root, 'dist', '.built');
  if (!existsSync(built)) return false;
  return execFileSync('find', [join(root, 'src'), join(root, 'package.json'), '-newer', built, '-print', '-quit'], { encoding: 'utf8' }).trim() === '';
}

/** Milliseconds from spawn to exit; the command must succeed. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const start = performance.now();
  const run = spawnSync(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - start;
  if (run.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${run.status}: ${run.stderr.toString()}`);
  return ms;
}

const { config, cleanup } = await benchToken();
const dir = await mkdtemp(join(tmpdir(), 'keyward-cli-bench-'));
const port = 18200 + Math.floor(Math.random() * 1000);
const url = `http://127.0.0.1:${port}`;
await writeFile(
  join(dir, 'keyward.hcl'),
  `storage "file" {\n  path = "${join(dir, 'storage')}"\n}\nseal "pkcs11" {\n  token_label = "${config.tokenLabel}"\n  generate_key = true\n}\nlistener "tcp" {\n  address = "127.0.0.1:${port}"\n  tls_disable = true\n}\nlog_level = "warn"\n`,
);
let server: ChildProcess | undefined;

try {
  server = spawn(keyward, ['server', `-config=${join(dir, 'keyward.hcl')}`], { env: { ...process.env, KEYWARD_HSM_PIN: config.pin }, stdio: 'ignore' });
  await waitForHttp(`${url}/v1/sys/seal-status`);
  const put = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${url}/v1/${path}`, { method: 'PUT', headers: { 'Content-Type': 'application/json', ...(token ? { 'X-Vault-Token': token } : {}) }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`PUT ${path} answered ${res.status}: ${await res.text()}`);
    return res.status === 204 ? {} : ((await res.json()) as Record<string, unknown>);
  };
  const init = (await put('sys/init', { secret_shares: 1, secret_threshold: 1 })) as { keys: string[]; root_token: string };
  await put('sys/unseal', { key: init.keys[0] });
  await put('sys/mounts/kv', { type: 'kv-v2' }, init.root_token);
  await put('kv/data/app', { data: { username: 'app', password: 'x'.repeat(32) } }, init.root_token);

  const env = { ...process.env, KEYWARD_ADDR: url, KEYWARD_TOKEN: init.root_token, VAULT_ADDR: '', VAULT_TOKEN: '' };
  const contenders: Array<[string, string[]]> = [
    [process.execPath, ['-e', '0']],
    [keyward, ['version']],
    [keyward, ['kv', 'get', 'kv/app']],
  ];
  // One untimed round: the page cache and the server's first requests.
  for (const [cmd, args] of contenders) timed(cmd, args, env);
  const times = contenders.map((): number[] => []);
  for (let round = 0; round < RUNS; round++) contenders.forEach(([cmd, args], i) => times[i]!.push(timed(cmd, args, env)));
  const [node, version, kvGet] = times.map(median) as [number, number, number];

  const how = distIsCurrent() ? `scripts/keyward running dist/` : 'scripts/keyward running the sources through tsx: dist/ is older than src/ (run scripts/setup.sh), so these are not the CLI\'s figures';
  const note = (extra: string) => `${how}; median of ${RUNS}, interleaved with node -e 0; ${extra}`;
  report({ name: 'CLI: keyward version vs node -e 0', value: version, baseline: node, unit: 'ms', ratio: version / node, note: note('lower is better; ratio = value/baseline') });
  report({
    name: 'CLI: keyward kv get (a running server) vs node -e 0',
    value: kvGet,
    baseline: node,
    unit: 'ms',
    ratio: kvGet / node,
    target: { of: 'ratio', op: '≤', limit: TIMES_NODE },
    note: note('two requests (which mount, then the read); lower is better; ratio = value/baseline'),
  });
  report({
    name: 'CLI: keyward kv get, wall time',
    value: kvGet,
    baseline: node,
    unit: 'ms',
    ratio: kvGet / node,
    target: { of: 'value', op: '≤', limit: KV_GET_MS },
    note: note('the issue\'s bound on this machine'),
  });
} finally {
  server?.kill('SIGTERM');
  if (server && server.exitCode === null) await new Promise((r) => server!.once('exit', r));
  await rm(dir, { recursive: true, force: true });
  await cleanup();
}
