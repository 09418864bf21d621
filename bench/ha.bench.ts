// HA on PostgreSQL: KV write and read throughput against the file backend, read scaling over
// three nodes against the active node alone, standby pickup after rotate, and failover time
// (kill -9 → first acknowledged write). PostgreSQL is a throwaway cluster started here.
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { startTestCluster, type TestCluster } from '../native-test/support/cluster.js';
import { call } from '../native-test/support/http.js';
import { freePort, startServerProcess } from '../native-test/support/process.js';
import { pgStop, startCluster as startPg } from '../native-test/support/postgres.js';
import { report } from './result.js';
import { load, median } from './support.js';

const TRIALS = Number(process.env.BENCH_HA_TRIALS ?? 5);
const LOCK_TTL_MS = 2000;


function writes(url: string, token: string, prefix: string): autocannon.Options {
  let n = 0;
  return {
    url,
    connections: 10,
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Vault-Token': token },
    requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, path: `/v1/kv/data/${prefix}${n++}`, body: JSON.stringify({ data: { v: n } }) }) }],
  };
}

function checked(r: autocannon.Result, what: string): autocannon.Result {
  if (r.non2xx || r.errors) throw new Error(`${what}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return r;
}

/** One row: req/s of `value` against `baseline`, with both p99s. */
function reportThroughput(name: string, value: autocannon.Result, baseline: autocannon.Result): void {
  report({
    name,
    value: value.requests.average,
    baseline: baseline.requests.average,
    unit: 'req/s',
    ratio: value.requests.average / baseline.requests.average,
    note: `p99 ${value.latency.p99} ms vs ${baseline.latency.p99} ms`,
  });
}

async function prepare(url: string, token: string): Promise<void> {
  await call(url, 'PUT', 'sys/mounts/kv', { token, body: { type: 'kv-v2' } });
  const r = await call(url, 'PUT', 'kv/data/app', { token, body: { data: { username: 'app', password: 'x'.repeat(32) } } });
  if (r.status !== 200) throw new Error(`setup write answered ${r.status}`);
}

async function activeIndex(c: TestCluster, among: number[]): Promise<number> {
  for (;;) {
    for (const i of among) {
      const r = await call(c.nodes[i]!.url, 'GET', 'sys/leader').catch(() => undefined);
      if (r?.body?.is_self) return i;
    }
    await sleep(10);
  }
}

const pg = startPg(await freePort(), true);
let cluster: TestCluster | undefined;
let fileServer: Awaited<ReturnType<typeof startServerProcess>> | undefined;
try {
  // Throughput: one file-backed node against the active node of a cluster (fenced writes, PostgreSQL).
  fileServer = await startServerProcess();
  const fileInit = await call(fileServer.server.url, 'PUT', 'sys/init', { body: { secret_shares: 1, secret_threshold: 1 } });
  await call(fileServer.server.url, 'PUT', 'sys/unseal', { body: { key: fileInit.body.keys[0] } });
  const fileToken = fileInit.body.root_token as string;
  await prepare(fileServer.server.url, fileToken);

  cluster = await startTestCluster({ pgUrl: pg.url, size: 3, lockTtl: `${LOCK_TTL_MS / 1000}s` });
  const c = cluster;
  const init = await call(c.nodes[0]!.url, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
  const keys = init.body.keys as string[];
  const token = init.body.root_token as string;
  for (let i = 0; i < 3; i++) await c.unseal(i, keys.slice(0, 2));
  let active = await activeIndex(c, [0, 1, 2]);
  await prepare(c.nodes[active]!.url, token);

  const pgWrite = checked(await load(writes(c.nodes[active]!.url, token, 'pg')), 'PostgreSQL writes');
  const fileWrite = checked(await load(writes(fileServer.server.url, fileToken, 'file')), 'file writes');
  reportThroughput('HTTP KV v2 write, PostgreSQL (HA active, fenced) vs file backend, 10 connections', pgWrite, fileWrite);
  const read = (url: string, t: string, connections = 10) => load({ url: `${url}/v1/kv/data/app`, connections, headers: { 'X-Vault-Token': t } });
  const pgRead = checked(await read(c.nodes[active]!.url, token), 'PostgreSQL reads');
  const fileRead = checked(await read(fileServer.server.url, fileToken), 'file reads');
  reportThroughput('HTTP KV v2 read, PostgreSQL (HA active) vs file backend, 10 connections', pgRead, fileRead);
  await fileServer.server.stop();
  fileServer = undefined;

  // Read scaling: 30 connections on the active node, then 10 on each of the three nodes at once.
  const alone = checked(await read(c.nodes[active]!.url, token, 30), 'reads on the active node');
  const spread = await Promise.all(c.nodes.map((n) => read(n.url, token, 10)));
  spread.forEach((r, i) => checked(r, `reads on ${c.nodes[i]!.id}`));
  const spreadTotal = spread.reduce((sum, r) => sum + r.requests.average, 0);
  report({
    name: 'HTTP KV v2 read spread over active + 2 standbys vs the active alone, 30 connections',
    value: spreadTotal,
    baseline: alone.requests.average,
    unit: 'req/s',
    ratio: spreadTotal / alone.requests.average,
    note: 'all processes share this machine\'s cores with PostgreSQL and the load generator',
  });

  // Standby pickup: rotate, write under the new term, time until each standby serves it itself.
  const pickups: number[] = [];
  for (let t = 0; t < TRIALS * 2; t++) {
    const a = c.nodes[active]!;
    await call(a.url, 'PUT', 'sys/rotate', { token });
    await call(a.url, 'PUT', `kv/data/pickup${t}`, { token, body: { data: { t } } });
    const written = performance.now();
    for (const s of c.nodes.filter((_, i) => i !== active)) {
      for (;;) {
        const r = await call(s.url, 'GET', `kv/data/pickup${t}`, { token });
        if (r.status === 200 && r.node === s.id) break;
      }
    }
    pickups.push(performance.now() - written);
  }
  // Baseline: one read of the same value from a standby that already knows the term.
  const readStart = performance.now();
  await call(c.nodes[(active + 1) % 3]!.url, 'GET', 'kv/data/pickup0', { token });
  const oneRead = performance.now() - readStart;
  report({
    name: `standby pickup after rotate (write → both standbys serve it), median of ${pickups.length}`,
    value: median(pickups),
    baseline: oneRead,
    unit: 'ms',
    ratio: oneRead / median(pickups),
    target: { of: 'value', op: '<', limit: 1000 },
    note: `max ${Math.max(...pickups).toFixed(1)} ms; baseline is one standby read; lower is better`,
  });

  // Failover: kill -9 the active node, time until a survivor acknowledges a write; then restart it.
  const failovers: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const victim = active;
    const survivors = [0, 1, 2].filter((i) => i !== victim);
    await c.nodes[victim]!.server.kill();
    const killed = performance.now();
    let done = false;
    while (!done) {
      for (const i of survivors) {
        const r = await call(c.nodes[i]!.url, 'PUT', `kv/data/failover${t}`, { token, body: { data: { t } } }).catch(() => undefined);
        if (r?.status === 200) done = true;
      }
      if (!done) await sleep(5);
    }
    failovers.push(performance.now() - killed);
    active = await activeIndex(c, survivors);
    await c.start(victim);
    await c.unseal(victim, keys.slice(0, 2));
  }
  report({
    name: `failover, kill -9 → first acknowledged write, median of ${failovers.length} (lock TTL ${LOCK_TTL_MS} ms)`,
    value: median(failovers),
    baseline: LOCK_TTL_MS,
    unit: 'ms',
    ratio: LOCK_TTL_MS / median(failovers),
    target: { of: 'value', op: '≤', limit: LOCK_TTL_MS, label: 'lock TTL' },
    note: `max ${Math.max(...failovers).toFixed(0)} ms; baseline is the TTL; lower is better`,
  });
} finally {
  await fileServer?.server.stop();
  await cluster?.stopAll();
  pgStop(pg);
}
