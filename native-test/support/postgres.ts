import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway PostgreSQL cluster for the tests, on loopback, owned by the postgres user when run as root. */
export interface PgCluster {
  url: string;
  dataDir: string;
  port: number;
  /** fsync on (benchmarks); tests run with fsync off for speed. */
  durable: boolean;
}

function binDir(): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('PostgreSQL server binaries not found: run scripts/setup.sh (apt-get install postgresql)');
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

function asOwner(cmd: string, args: string[]): void {
  const bin = join(binDir(), cmd);
  if (userInfo().uid === 0) execFileSync('runuser', ['-u', 'postgres', '--', bin, ...args], { stdio: 'pipe' });
  else execFileSync(bin, args, { stdio: 'pipe' });
}

export function startCluster(port: number, durable = false): PgCluster {
  const root = mkdtempSync(join(tmpdir(), 'keyward-pg-'));
  if (userInfo().uid === 0) execFileSync('chown', ['-R', 'postgres:postgres', root]);
  const dataDir = join(root, 'data');
  asOwner('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const cluster = { url: `postgres://postgres@127.0.0.1:${port}/postgres`, dataDir, port, durable };
  pgStart(cluster);
  return cluster;
}

export function pgStart(c: PgCluster): void {
  const socketDir = join(c.dataDir, '..');
  asOwner('pg_ctl', ['-D', c.dataDir, '-w', '-l', join(socketDir, 'log'), '-o', `-p ${c.port} -k ${socketDir} -c listen_addresses=127.0.0.1${c.durable ? '' : ' -c fsync=off'}`, 'start']);
}

export function pgStop(c: PgCluster): void {
  asOwner('pg_ctl', ['-D', c.dataDir, '-w', '-m', 'immediate', 'stop']);
}

