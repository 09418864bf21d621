// HTTP: cold start, unseal latency, KV v2 read at 1/10/50 connections and KV v2 write on the file
// backend, each against a bare fastify route doing the same in the same run: for reads the floor
// (bench/floor-server.mjs: the same two PKCS#11 decryptions on the same token, the same JSON), for
// writes the same durable write. Next to each read row, a calibration: the floor route plus only
// the token lookup and JSON work any key service does on that read, against the floor. keyward
// and the baselines run as separate processes; autocannon drives them.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import autocannon from 'autocannon';
import { HEADER_BYTES } from '../src/crypto/value-format.js';
import { report } from './result.js';
import { benchToken, load, median, waitForHttp } from './support.js';

const root = join(import.meta.dirname, '..');


const { config, cleanup } = await benchToken();
const dir = await mkdtemp(join(tmpdir(), 'keyward-http-bench-'));
const kwPort = 18200 + Math.floor(Math.random() * 1000);
const barePort = kwPort + 1000;
const floorPort = kwPort + 2000;
const essentialsPort = kwPort + 3000;
await writeFile(
  join(dir, 'keyward.hcl'),
  `storage "file" {\n  path = "${join(dir, 'storage')}"\n}\nseal "pkcs11" {\n  token_label = "${config.tokenLabel}"\n  generate_key = true\n}\nlistener "tcp" {\n  address = "127.0.0.1:${kwPort}"\n  tls_disable = true\n}\nlog_level = "warn"\n`,
);
const children: ChildProcess[] = [];
const kwUrl = `http://127.0.0.1:${kwPort}`;
const bareUrl = `http://127.0.0.1:${barePort}`;
const floorUrl = `http://127.0.0.1:${floorPort}`;
const essentialsUrl = `http://127.0.0.1:${essentialsPort}`;

/** The storage key and sealed length (ciphertext ‖ tag, after the barrier's header) of every entry file under `data`. */
function storedEntries(data: string, prefix = ''): { path: string; sealedBytes: number }[] {
  return readdirSync(data, { withFileTypes: true }).flatMap((d) => {
    if (d.isDirectory()) return storedEntries(join(data, d.name), `${prefix}${decodeURIComponent(d.name)}/`);
    if (!d.name.startsWith('_')) return [];
    return [{ path: `${prefix}${decodeURIComponent(d.name.slice(1))}`, sealedBytes: statSync(join(data, d.name)).size - HEADER_BYTES }];
  });
}

const startKeyward = () => spawn(join(root, 'scripts/keyward'), ['server', `-config=${join(dir, 'keyward.hcl')}`], { env: { ...process.env, KEYWARD_HSM_PIN: config.pin }, stdio: 'ignore' });

/** Median over three starts of spawn → first answered request (the first start also warms the page cache). */
async function coldStartMs(launch: () => ChildProcess, url: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    const child = launch();
    await waitForHttp(url);
    times.push(performance.now() - start);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  return median(times);
}

try {
  const kwStart = await coldStartMs(startKeyward, `${kwUrl}/v1/sys/seal-status`);
  children.push(startKeyward());
  await waitForHttp(`${kwUrl}/v1/sys/seal-status`);

  const put = (path: string, body: unknown, token?: string) =>
    fetch(`${kwUrl}/v1/${path}`, { method: 'PUT', headers: { 'Content-Type': 'application/json', ...(token ? { 'X-Vault-Token': token } : {}) }, body: JSON.stringify(body) }).then((r) => r.json().catch(() => ({})));
  const init = (await put('sys/init', { secret_shares: 1, secret_threshold: 1 })) as { keys: string[]; root_token: string };
  const token = init.root_token;
  let start = performance.now();
  await put('sys/unseal', { key: init.keys[0] });
  const firstRead = await fetch(`${kwUrl}/v1/secret/none`, { headers: { 'X-Vault-Token': token } });
  const unsealMs = performance.now() - start;
  if (firstRead.status !== 404) throw new Error(`first read after unseal answered ${firstRead.status}`);
  start = performance.now();
  await fetch(`${kwUrl}/v1/secret/none`, { headers: { 'X-Vault-Token': token } });
  const readMs = performance.now() - start;

  await put('sys/mounts/kv', { type: 'kv-v2' }, token);
  await put('kv/data/app', { data: { username: 'app', password: 'x'.repeat(32), url: 'postgres://db.internal:5432/app' } }, token);
  const kwRead = await fetch(`${kwUrl}/v1/kv/data/app`, { headers: { 'X-Vault-Token': token } });
  const payload = await kwRead.text();
  await writeFile(join(dir, 'payload.json'), payload);
  // What a KV v2 read of kv/data/app decrypts: its metadata entry, then its version 1 entry.
  const entries = storedEntries(join(dir, 'storage', 'data'));
  const readEntries = ['/metadata/app', '/versions/app/1'].map((tail) => {
    const found = entries.filter((e) => e.path.startsWith('logical/') && e.path.endsWith(tail));
    if (found.length !== 1) throw new Error(`expected one stored entry ending ${tail}, found ${found.length}`);
    return found[0]!;
  });
  await writeFile(join(dir, 'floor-entries.json'), JSON.stringify(readEntries));
  const startFloor = (port: number, ...mode: string[]) =>
    spawn(process.execPath, [join(root, 'bench/floor-server.mjs'), String(port), join(dir, 'payload.json'), join(dir, 'floor-entries.json'), config.lib, config.tokenLabel!, ...mode], {
      env: { ...process.env, FLOOR_PIN: config.pin, FLOOR_TOKEN: token },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  children.push(startFloor(floorPort), startFloor(essentialsPort, '--essentials'));
  await waitForHttp(`${floorUrl}/v1/kv/data/app`);
  const floorRead = await fetch(`${floorUrl}/v1/kv/data/app`);
  if ((await floorRead.text()) !== payload || floorRead.headers.get('content-type') !== kwRead.headers.get('content-type')) {
    throw new Error(`the floor route does not return what keyward returns (content type ${floorRead.headers.get('content-type')} vs ${kwRead.headers.get('content-type')})`);
  }
  // The calibration answers what keyward answers, but for its own request id.
  await waitForHttp(`${essentialsUrl}/v1/kv/data/app`);
  const withoutId = (text: string) => ({ ...(JSON.parse(text) as object), request_id: '' });
  const essentialsRead = await fetch(`${essentialsUrl}/v1/kv/data/app`, { headers: { 'X-Vault-Token': token } });
  if (!isDeepStrictEqual(withoutId(await essentialsRead.text()), withoutId(payload))) throw new Error('the essentials route does not return what keyward returns');

  const startBare = () => spawn(process.execPath, [join(root, 'bench/bare-server.mjs'), String(barePort), join(dir, 'payload.json'), join(dir, 'bare-data')], { stdio: 'ignore' });
  const bareStart = await coldStartMs(startBare, `${bareUrl}/v1/kv/data/app`);
  children.push(startBare());
  await waitForHttp(`${bareUrl}/v1/kv/data/app`);

  report({ name: 'cold start to first served request vs bare fastify process (median of 3)', value: kwStart, baseline: bareStart, unit: 'ms', ratio: bareStart / kwStart, note: 'lower is better; ratio = baseline/value' });
  report({ name: 'unseal (last share → first served read) vs one KV read', value: unsealMs, baseline: readMs, unit: 'ms', ratio: readMs / unsealMs, note: 'lower is better; ratio = baseline/value' });

  for (const connections of [1, 10, 50]) {
    const kw = await load({ url: `${kwUrl}/v1/kv/data/app`, connections, headers: { 'X-Vault-Token': token } });
    const base = await load({ url: `${floorUrl}/v1/kv/data/app`, connections });
    if (kw.non2xx || kw.errors) throw new Error(`keyward reads failed: ${kw.non2xx} non-2xx, ${kw.errors} errors`);
    if (base.non2xx || base.errors) throw new Error(`floor reads failed: ${base.non2xx} non-2xx, ${base.errors} errors`);
    report({
      name: `HTTP KV v2 read, ${connections} connection${connections > 1 ? 's' : ''}, vs bare route doing its 2 PKCS#11 decryptions`,
      value: kw.requests.average,
      baseline: base.requests.average,
      unit: 'req/s',
      ratio: kw.requests.average / base.requests.average,
      target: { of: 'ratio', op: '≥', limit: 0.7 },
      note: `p50 ${kw.latency.p50} ms vs ${base.latency.p50} ms, p99 ${kw.latency.p99} ms vs ${base.latency.p99} ms; the floor decrypts ${readEntries.map((e) => e.sealedBytes).join(' + ')} bytes (metadata + version, tags included)`,
    });
    const essentials = await load({ url: `${essentialsUrl}/v1/kv/data/app`, connections, headers: { 'X-Vault-Token': token } });
    if (essentials.non2xx || essentials.errors) throw new Error(`essentials reads failed: ${essentials.non2xx} non-2xx, ${essentials.errors} errors`);
    report({
      name: `calibration: the floor route plus only token HMAC lookup, JSON decoding of both entries and JSON encoding of the reply, ${connections} connection${connections > 1 ? 's' : ''}, vs the floor`,
      value: essentials.requests.average,
      baseline: base.requests.average,
      unit: 'req/s',
      ratio: essentials.requests.average / base.requests.average,
      note: 'what that work alone leaves of the floor (bench/floor-server.mjs --essentials): the 0.7 row above allows keyward no more',
    });
  }

  const writeOpts = (url: string, headers: Record<string, string>): autocannon.Options => {
    let n = 0;
    return {
      url,
      connections: 10,
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, path: `/v1/kv/data/w${n++}`, body: JSON.stringify({ data: { v: n } }) }) }],
    };
  };
  const kwWrite = await load(writeOpts(kwUrl, { 'X-Vault-Token': token }));
  const bareWrite = await load(writeOpts(bareUrl, {}));
  if (kwWrite.non2xx || kwWrite.errors) throw new Error(`keyward writes failed: ${kwWrite.non2xx} non-2xx, ${kwWrite.errors} errors`);
  report({
    name: 'HTTP KV v2 write (file backend), 10 connections, vs bare durable write',
    value: kwWrite.requests.average,
    baseline: bareWrite.requests.average,
    unit: 'req/s',
    ratio: kwWrite.requests.average / bareWrite.requests.average,
    target: { of: 'ratio', op: '≥', limit: 0.6 },
    note: `p99 ${kwWrite.latency.p99} ms vs ${bareWrite.latency.p99} ms`,
  });
} finally {
  for (const c of children) c.kill('SIGTERM');
  await cleanup();
}
