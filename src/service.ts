import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ServerConfig } from './config/config.js';
import { Core } from './core/core.js';
import { buildHttpServer } from './http/server.js';
import { Token } from './pkcs11/token.js';
import type { StorageBackend } from './storage/backend.js';
import { FileBackend } from './storage/file.js';
import { InmemBackend } from './storage/inmem.js';

export interface ServiceOptions {
  /** Clock for interval-based rotation; tests inject one instead of sleeping. */
  now?: () => number;
  /** Overrides the key-share endpoints' rate limit (the fuzz tests lift it to reach the handlers). */
  quorumRateLimit?: { burst: number; perSecond: number };
}

/** A running keyward: storage, token, core and HTTP listener, closed together. */
export interface Service {
  core: Core;
  token: Token;
  storage: StorageBackend;
  app: FastifyInstance;
  /** Base URL the listener answers on (with the real port when 0 was configured). */
  url: string;
  close(): Promise<void>;
}

export async function openStorage(config: ServerConfig['storage'], env: NodeJS.ProcessEnv = process.env, log?: Logger): Promise<StorageBackend> {
  if (config.type === 'inmem') return new InmemBackend();
  if (config.type === 'postgresql') {
    // pg is loaded only for this backend (about 150 ms of every other start).
    const { PostgresBackend } = await import('./storage/postgresql.js');
    return PostgresBackend.open({
      connectionUrl: config.connectionUrl,
      table: config.table!,
      maxConnections: config.maxParallel!,
      retryForMs: 5000,
      haEnabled: config.ha !== undefined,
    });
  }
  // Test-only: crash-consistency tests kill the process at a chosen write.
  const crashAt = env.KEYWARD_TEST_CRASH_AT_WRITE ? Number(env.KEYWARD_TEST_CRASH_AT_WRITE) : undefined;
  return FileBackend.open(config.path!, { crashAtWrite: crashAt, warn: log && ((message) => log.warn(message)) });
}

export function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`listener address "${address}" is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

export async function startService(config: ServerConfig, log: Logger, opts: ServiceOptions = {}): Promise<Service> {
  const storage = await openStorage(config.storage, process.env, log);
  const token = new Token(
    {
      lib: config.seal.lib,
      tokenLabel: config.seal.tokenLabel,
      slot: config.seal.slot,
      pin: config.seal.pin,
      keyLabel: config.seal.keyLabel,
      maxParallel: config.seal.maxParallel,
      libraryParameters: config.seal.libraryParameters,
      ivPolicy: config.seal.ivPolicy,
    },
    log.child({ component: 'pkcs11' }),
  );
  try {
    log.info({ sealKeyFound: token.hasSealKey() }, 'connected to the PKCS#11 token');
    await token.started();
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'PKCS#11 token not reachable yet; requests that need it will answer 503 until it is');
  }
  const haConfig = config.storage.ha;
  if (haConfig && !storage.ha) throw new Error(`storage "${storage.type}" cannot elect a leader`);
  // Names and addresses are filled in once the listener knows its port.
  const ha = haConfig && {
    storage: storage.ha!,
    nodeId: '',
    apiAddr: '',
    clusterAddr: '',
    lockTtlMs: haConfig.lockTtlMs,
    upgradeGraceMs: haConfig.upgradeGraceMs,
    pollMs: haConfig.upgradePollMs,
    // Test-only: the fencing test freezes an active node's lease renewal to reach the write fence.
    freezeLeaseFile: process.env.KEYWARD_TEST_HA_FREEZE_LEASE_FILE,
  };
  const core = new Core({
    storage,
    token,
    generateKey: config.seal.generateKey,
    log,
    countPersistMs: config.countPersistMs,
    rotationCheckMs: config.rotationCheckMs,
    tokenTtls: config.tokenTtls,
    now: opts.now,
    // Test-only: the HA no-lockout test kills the active node between a rekey's reply and its switch.
    crashAfterReplyFile: process.env.KEYWARD_TEST_CRASH_AFTER_REPLY_FILE,
    ha,
  });
  const l = config.listener;
  const https = l.tlsDisable
    ? undefined
    : { cert: await readFile(l.tlsCertFile!), key: await readFile(l.tlsKeyFile!), minVersion: l.tlsMinVersion ?? ('TLSv1.2' as const) };
  const app = buildHttpServer(core, { log, https, quorumRateLimit: opts.quorumRateLimit, standbyRequests: config.standbyRequests, limits: l.limits });
  const { host, port } = splitAddress(l.address);
  if (!https && !isLoopback(host)) {
    log.warn({ address: l.address }, 'listener has tls_disable = true on an address other hosts can reach: tokens, shares and secrets cross the network in clear');
  }
  await app.listen({ host, port });
  const bound = app.server.address();
  const realPort = typeof bound === 'object' && bound ? bound.port : port;
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${realPort}`;
  core.nodeId = config.nodeId ?? `${hostname()}:${realPort}`;
  if (ha) {
    ha.nodeId = core.nodeId;
    ha.apiAddr = config.apiAddr ?? url;
    ha.clusterAddr = config.clusterAddr ?? ha.apiAddr;
  }
  log.info({ url, storage: storage.type, node: core.nodeId, ha: ha !== undefined }, 'keyward listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app.close();
      await core.shutdown();
      token.disconnect();
      await storage.close();
    })());
  return { core, token, storage, app, url, close };
}

/** Whether only this host can reach the address (127.0.0.0/8, ::1, localhost). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
