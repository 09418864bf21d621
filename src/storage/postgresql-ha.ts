import pg from 'pg';
import type { HaStorage, LeaderRecord, LeaseClaim, WriteFence } from './backend.js';

const LEASE = 'leader';

/**
 * Leader election and change notification on PostgreSQL. The lease is one row in `<table>_lock`
 * whose expiry is judged by the database's clock, so nodes need not agree on time. `epoch` is
 * unique: taking the lease changes it, which conflicts with the KEY SHARE lock every fenced write
 * holds on the row, so a takeover waits for the old leader's in-flight writes and every later one fails.
 */
export class PostgresHa implements HaStorage {
  fence: WriteFence = { kind: 'open' };
  readonly lockTable: string;
  readonly channel: string;

  constructor(
    private readonly pool: pg.Pool,
    private readonly connectionUrl: string | undefined,
    table: string,
    private readonly retry: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {
    this.lockTable = `"${table}_lock"`;
    this.channel = `${table}_changes`;
  }

  /** DDL for the lease row and the trigger that reports every committed change outside logical/. */
  schema(dataTable: string, plainTable: string): string[] {
    const fn = `"${plainTable}_notify"`;
    const trigger = `"${plainTable}_notify_changes"`;
    return [
      `CREATE TABLE IF NOT EXISTS ${this.lockTable} (name TEXT PRIMARY KEY, epoch BIGINT NOT NULL UNIQUE, holder TEXT NOT NULL,
         node_id TEXT NOT NULL, address TEXT NOT NULL, cluster_address TEXT NOT NULL,
         acquired_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL)`,
      `INSERT INTO ${this.lockTable} VALUES ('${LEASE}', 0, '', '', '', '', '-infinity', '-infinity') ON CONFLICT (name) DO NOTHING`,
      `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE p TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.path ELSE NEW.path END;
       BEGIN
         IF p NOT LIKE 'logical/%' THEN PERFORM pg_notify('${this.channel}', p); END IF;
         RETURN NULL;
       END $$`,
      `DROP TRIGGER IF EXISTS ${trigger} ON ${dataTable}`,
      `CREATE TRIGGER ${trigger} AFTER INSERT OR UPDATE OR DELETE ON ${dataTable} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
    ];
  }

  /** The statement a fenced write runs first in its transaction; no row means the lease is gone. */
  fenceCheck(): { sql: string; params: unknown[] } | undefined {
    const f = this.fence;
    if (f.kind !== 'lease') return undefined;
    return {
      sql: `SELECT 1 FROM ${this.lockTable} WHERE name = '${LEASE}' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() FOR KEY SHARE`,
      params: [f.holder, f.epoch],
    };
  }

  setWriteFence(fence: WriteFence): void {
    this.fence = fence;
  }

  async acquire(claim: LeaseClaim, ttlMs: number): Promise<number | undefined> {
    const r = await this.retry(() =>
      this.pool.query<{ epoch: string }>(
        `UPDATE ${this.lockTable} SET epoch = epoch + 1, holder = $1, node_id = $2, address = $3, cluster_address = $4,
           acquired_at = clock_timestamp(), expires_at = clock_timestamp() + $5 * interval '1 millisecond'
         WHERE name = '${LEASE}' AND expires_at <= clock_timestamp() RETURNING epoch`,
        [claim.holder, claim.nodeId, claim.address, claim.clusterAddress, ttlMs],
      ),
    );
    return r.rows[0] ? Number(r.rows[0].epoch) : undefined;
  }

  async renew(holder: string, epoch: number, ttlMs: number): Promise<boolean> {
    // No retry: the caller decides, from the time of its last successful renewal, when to give up.
    const r = await this.pool.query(
      `UPDATE ${this.lockTable} SET expires_at = clock_timestamp() + $3 * interval '1 millisecond'
       WHERE name = '${LEASE}' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()`,
      [holder, epoch, ttlMs],
    );
    return r.rowCount === 1;
  }

  async release(holder: string, epoch: number): Promise<void> {
    await this.pool.query(
      `WITH released AS (UPDATE ${this.lockTable} SET expires_at = clock_timestamp() WHERE name = '${LEASE}' AND holder = $1 AND epoch = $2 RETURNING 1)
       SELECT pg_notify('${this.channel}', 'lease') FROM released`,
      [holder, epoch],
    );
  }

  async leader(): Promise<LeaderRecord | undefined> {
    const r = await this.retry(() =>
      this.pool.query<{ holder: string; node_id: string; address: string; cluster_address: string; epoch: string; acquired_at: Date; remaining: number }>(
        `SELECT holder, node_id, address, cluster_address, epoch, acquired_at,
           GREATEST(0, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::float8 AS remaining
         FROM ${this.lockTable} WHERE name = '${LEASE}'`,
      ),
    );
    const row = r.rows[0];
    if (!row || row.remaining <= 0) return undefined;
    return {
      holder: row.holder,
      nodeId: row.node_id,
      address: row.address,
      clusterAddress: row.cluster_address,
      epoch: Number(row.epoch),
      acquiredAt: row.acquired_at,
      remainingMs: row.remaining,
    };
  }

  watch(onChange: (path: string) => void, onResync: () => void): { close(): Promise<void> } {
    let client: pg.Client | undefined;
    let closed = false;
    let delay = 100;
    const connect = async (): Promise<void> => {
      while (!closed) {
        const c = new pg.Client({ connectionString: this.connectionUrl });
        try {
          c.on('error', () => undefined);
          await c.connect();
          c.on('notification', (n) => {
            if (n.payload) onChange(n.payload);
          });
          c.on('end', () => {
            if (client === c && !closed) {
              client = undefined;
              void connect();
            }
          });
          await c.query(`LISTEN "${this.channel}"`);
          client = c;
          delay = 100;
          onResync();
          return;
        } catch {
          await c.end().catch(() => undefined);
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 2000);
        }
      }
    };
    void connect();
    return {
      close: async () => {
        closed = true;
        await client?.end().catch(() => undefined);
      },
    };
  }
}
