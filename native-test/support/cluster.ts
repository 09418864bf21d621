import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sealAndListenerHcl, type ServerProcess, spawnServer } from './process.js';
import { call } from './http.js';
import { freshToken, type TestToken } from './softhsm.js';

export interface ClusterNode {
  id: string;
  port: number;
  url: string;
  config: string;
  /** While this file exists the node, when active, neither renews nor checks its lease (a test hook). */
  freezeLeaseFile: string;
  server: ServerProcess;
}

/** Several keyward processes over one PostgreSQL table and one SoftHSM2 token directory. */
export interface TestCluster {
  token: TestToken;
  table: string;
  nodes: ClusterNode[];
  /** Starts (or restarts) node `i` with its config. */
  start(i: number): Promise<ClusterNode>;
  /** Unseals node `i` with the given shares. */
  unseal(i: number, keys: readonly string[]): Promise<void>;
  stopAll(): Promise<void>;
}

export interface ClusterOptions {
  pgUrl: string;
  size: number;
  lockTtl?: string;
  pollInterval?: string;
  upgradeGrace?: string;
  extraConfig?: string;
  env?: Record<string, string>;
}

export async function startTestCluster(opts: ClusterOptions): Promise<TestCluster> {
  const token = await freshToken();
  const dir = await mkdtemp(join(tmpdir(), 'kw-cluster-'));
  const table = `kw_${randomBytes(4).toString('hex')}`;
  const configs: Array<{ id: string; port: number; config: string; freezeLeaseFile: string }> = [];
  for (let i = 0; i < opts.size; i++) {
    const id = `node${i + 1}`;
    const port = await freePort();
    const config = join(dir, `${id}.hcl`);
    await writeFile(
      config,
      `node_id  = "${id}"
api_addr = "http://127.0.0.1:${port}"
${opts.extraConfig ?? ''}
storage "postgresql" {
  connection_url        = "${opts.pgUrl}"
  table                 = "${table}"
  ha_enabled            = "true"
  lock_ttl              = "${opts.lockTtl ?? '3s'}"
  upgrade_poll_interval = "${opts.pollInterval ?? '2s'}"
  upgrade_grace_period  = "${opts.upgradeGrace ?? '2m'}"
}

${sealAndListenerHcl(token, port)}`,
    );
    configs.push({ id, port, config, freezeLeaseFile: join(dir, `${id}.freeze-lease`) });
  }
  const nodes: ClusterNode[] = [];
  const cluster: TestCluster = {
    token,
    table,
    nodes,
    async start(i) {
      const c = configs[i]!;
      const server = await spawnServer(c.config, token, c.port, { ...opts.env, KEYWARD_TEST_HA_FREEZE_LEASE_FILE: c.freezeLeaseFile });
      nodes[i] = { ...c, url: server.url, server };
      return nodes[i]!;
    },
    async unseal(i, keys) {
      for (const key of keys) await call(nodes[i]!.url, 'PUT', 'sys/unseal', { body: { key } });
    },
    async stopAll() {
      await Promise.all(nodes.map((n) => (n.server.child.exitCode === null && n.server.child.signalCode === null ? n.server.kill() : undefined)));
    },
  };
  for (let i = 0; i < opts.size; i++) await cluster.start(i);
  return cluster;
}
