import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { childrenOf, NotActiveError, type StorageBackend, StorageKeyError, type StorageOp, StorageUnavailableError, validateKey, validatePrefix } from './backend.js';
import { PostgresHa } from './postgresql-ha.js';

export interface PostgresOptions {
  /** postgres://… ; when absent, the usual PG* environment variables apply. */
  connectionUrl?: string;
  table: string;
  maxConnections: number;
  /** How long transient connection failures are retried before a request fails (ms). */
  retryForMs: number;
  /** Leader election, write fencing and change notification for several nodes. */
  haEnabled?: boolean;
}

type Queryable = Pick<pg.Pool, 'query'>;

/**
 * The longest key, in bytes of UTF-8, the primary key's btree index takes whatever the key holds:
 * an index entry is at most 2704 bytes on 8 KiB pages, less its 8-byte header and the text's
 * 4-byte length. Past it an insert fails unless the key happens to compress, so longer keys are
 * refused before their statement. Only multi-byte keys reach it (keys are at most 1024 characters).
 */
const MAX_KEY_BYTES = 2692;

// Connection-level failures worth retrying: refused or reset sockets, server shutting down or starting.
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006']);

function isTransient(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (e.code !== undefined && TRANSIENT_CODES.has(e.code)) || /Connection terminated|connection timeout|Client has encountered a connection error/i.test(e.message ?? '');
}

/**
 * Entries in one table (`path` primary key, `value` bytea); transactions are SQL transactions.
 * The schema is created on first start. Transient connection errors are retried with backoff
 * and reported as StorageUnavailableError (503) when they outlast the retry window.
 */
export class PostgresBackend implements StorageBackend {
  readonly type = 'postgresql';
  readonly ha: PostgresHa | undefined;
  private readonly table: string;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly opts: PostgresOptions,
  ) {
    this.table = quoteIdentifier(opts.table);
    this.ha = opts.haEnabled ? new PostgresHa(pool, opts.connectionUrl, opts.table, (fn) => this.retry(fn)) : undefined;
  }

  static async open(opts: PostgresOptions): Promise<PostgresBackend> {
    const pool = new pg.Pool({ connectionString: opts.connectionUrl, max: opts.maxConnections, connectionTimeoutMillis: 5000 });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    const backend = new PostgresBackend(pool, opts);
    const ddl = [
      `CREATE TABLE IF NOT EXISTS ${backend.table} (path TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL)`,
      ...(backend.ha?.schema(backend.table, opts.table) ?? []),
    ];
    // Several nodes may start at once: the advisory lock keeps their DDL from racing.
    await backend.retry(() =>
      backend.inTransaction(async (q) => {
        await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`keyward schema ${opts.table}`]);
        for (const statement of ddl) await q.query(statement);
      }),
    );
    return backend;
  }

  async get(key: string): Promise<Buffer | undefined> {
    checkKey(key);
    const r = await this.retry(() => this.pool.query<{ value: Buffer }>(`SELECT value FROM ${this.table} WHERE path = $1`, [key]));
    return r.rows[0]?.value;
  }

  async put(key: string, value: Buffer): Promise<void> {
    checkNewKey(key);
    await this.write(false, (q) => q.query(this.upsertSql(), [key, value]));
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    await this.write(false, (q) => q.query(`DELETE FROM ${this.table} WHERE path = $1`, [key]));
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const r = await this.retry(() =>
      this.pool.query<{ path: string }>(`SELECT path FROM ${this.table} WHERE path LIKE $1 ESCAPE '\\'`, [`${escapeLike(prefix)}%`]),
    );
    return childrenOf(
      r.rows.map((row) => row.path),
      prefix,
    );
  }

  async transaction(ops: readonly StorageOp[]): Promise<void> {
    for (const op of ops) {
      if (op.kind === 'put') checkNewKey(op.key);
      else checkKey(op.key);
    }
    await this.write(true, async (q) => {
      for (const op of ops) {
        if (op.kind === 'put') await q.query(this.upsertSql(), [op.key, op.value]);
        else await q.query(`DELETE FROM ${this.table} WHERE path = $1`, [op.key]);
      }
    });
  }

  async compareAndSwap(key: string, expected: Buffer, next: Buffer): Promise<boolean> {
    // Only updates a row that exists, whose key the index already holds.
    checkKey(key);
    const r = await this.write(false, (q) => q.query(`UPDATE ${this.table} SET value = $3 WHERE path = $1 AND value = $2`, [key, expected, next]));
    return r.rowCount === 1;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * Runs a write: as one statement when it needs neither atomicity nor a fence, else in a
   * transaction that first checks (and KEY SHARE locks) this node's lease.
   */
  private async write<T>(atomic: boolean, run: (q: Queryable) => Promise<T>): Promise<T> {
    const fence = this.ha?.fence;
    if (fence?.kind === 'refuse') throw new NotActiveError('this node is a standby; writes are made by the active node');
    const check = this.ha?.fenceCheck();
    if (!atomic && !check) return this.retry(() => run(this.pool));
    return this.retry(() =>
      this.inTransaction(async (q) => {
        if (check && (await q.query(check.sql, check.params)).rowCount !== 1) {
          throw new NotActiveError('this node no longer holds the leader lease; the write was not made');
        }
        return run(q);
      }),
    );
  }

  /** Runs `fn` on one pooled connection between BEGIN and COMMIT, rolling back if it throws. */
  private async inTransaction<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // The pool listens for errors only on idle clients: a checked-out one losing its connection
    // would emit an unhandled 'error' and end the process. The failing query reports it instead.
    const ignore = (): void => undefined;
    client.on('error', ignore);
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.removeListener('error', ignore);
      client.release();
    }
  }

  private upsertSql(): string {
    return `INSERT INTO ${this.table} (path, value) VALUES ($1, $2) ON CONFLICT (path) DO UPDATE SET value = EXCLUDED.value`;
  }

  /** Runs `fn`, retrying transient connection failures with doubling backoff within the retry window. */
  private async retry<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.opts.retryForMs;
    let delay = 50;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (!isTransient(err)) throw err;
        if (Date.now() + delay > deadline) throw new StorageUnavailableError((err as Error).message);
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      }
    }
  }
}

/** validateKey, and no unpaired surrogate: sent as UTF-8 it becomes U+FFFD, so two keys would share one row. */
function checkKey(key: string): void {
  validateKey(key);
  if (/\p{Cs}/u.test(key)) throw new StorageKeyError(key, 'is not valid Unicode (it has an unpaired surrogate)');
}

/** checkKey, and a key the index can take for a new row. */
function checkNewKey(key: string): void {
  checkKey(key);
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) {
    throw new StorageKeyError(key, `is too long for PostgreSQL storage: it is ${bytes} bytes of UTF-8, and the table's index takes at most ${MAX_KEY_BYTES}`);
  }
}

function quoteIdentifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid table name "${name}"`);
  return `"${name}"`;
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}
