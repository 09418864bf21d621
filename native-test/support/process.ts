import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freshToken, type TestToken } from './softhsm.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const KEYWARD = join(ROOT, 'scripts', 'keyward');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The seal and listener blocks every test server uses: the given token, plain HTTP on loopback. */
export function sealAndListenerHcl(token: TestToken, port: number): string {
  return `seal "pkcs11" {
  token_label  = "${token.config.tokenLabel}"
  key_label    = "keyward-seal"
  generate_key = true
}

listener "tcp" {
  address     = "127.0.0.1:${port}"
  tls_disable = true
}
`;
}

/** Writes an HCL config for a server on file storage and the given token; `extra` is prepended verbatim. */
export async function writeConfig(dir: string, token: TestToken, port: number, extra = ''): Promise<string> {
  const file = join(dir, 'keyward.hcl');
  await writeFile(
    file,
    `${extra}
storage "file" {
  path = "${join(dir, 'storage')}"
}

${sealAndListenerHcl(token, port)}`,
  );
  return file;
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  /** Settles with the exit code (null when killed by a signal) once the process has ended. */
  exited: Promise<number | null>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/** Starts `keyward server -config=FILE` as a child process and waits until it answers. */
export async function spawnServer(configFile: string, token: TestToken, port: number, extraEnv: Record<string, string> = {}, cwd = ROOT): Promise<ServerProcess> {
  const child = spawn(KEYWARD, ['server', `-config=${configFile}`], {
    cwd,
    env: { ...process.env, SOFTHSM2_CONF: token.confPath, KEYWARD_HSM_PIN: token.config.pin, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${out}`);
    try {
      const res = await fetch(`${url}/v1/sys/seal-status`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    url,
    output: () => out,
    exited,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface FreshServer {
  server: ServerProcess;
  token: TestToken;
  /** Holds the config file and the server's storage. */
  dir: string;
  config: string;
  port: number;
}

/**
 * A server process on a fresh SoftHSM2 token, file storage in a new temp dir and a free port.
 * `configExtra` is prepended to the config; `runInDir` starts it with that dir as its cwd.
 */
export async function startServerProcess(opts: { configExtra?: string; env?: Record<string, string>; runInDir?: boolean } = {}): Promise<FreshServer> {
  const token = await freshToken();
  const dir = await mkdtemp(join(tmpdir(), 'kw-server-'));
  const port = await freePort();
  const config = await writeConfig(dir, token, port, opts.configExtra);
  const server = await spawnServer(config, token, port, opts.env, opts.runInDir ? dir : ROOT);
  return { server, token, dir, config, port };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the keyward CLI with the given env and optional standard input. */
export function runCli(args: string[], env: Record<string, string>, stdin?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(KEYWARD, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}
