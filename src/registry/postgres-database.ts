import pg from 'pg';
import { CaliperError } from '../errors.ts';
import {
  REGISTRY_CHANNEL,
  type RegistryDatabase,
  type SqlExecutor,
  type SqlValue,
  type WriteTransaction,
} from './registry-database.ts';
import { migratePostgres } from './schema-migrations.ts';

/** `?` placeholders to PostgreSQL's `$1, $2…` (the registry's statements have no `?` inside literals). */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** The URI as it may be shown: the password replaced by ***. */
export function redactedUri(uri: string): string {
  try {
    const url = new URL(uri);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return uri.replace(/:[^:@/]*@/, ':***@');
  }
}

/** BIGINT (sizes, counts) as JavaScript numbers: registry values stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Deadlock and serialization failures: the transaction is run again. */
const RETRYABLE = new Set(['40P01', '40001']);

function executor(query: (sql: string, params: readonly SqlValue[]) => Promise<pg.QueryResult>): SqlExecutor {
  return {
    all: async <T>(sql: string, params: readonly SqlValue[] = []) => (await query(sql, params)).rows as T[],
    get: async <T>(sql: string, params: readonly SqlValue[] = []) =>
      (await query(sql, params)).rows[0] as T | undefined,
    run: async (sql: string, params: readonly SqlValue[] = []) => {
      await query(sql, params);
    },
  };
}

/**
 * The shared registry database: PostgreSQL through a small pool. Writes are READ COMMITTED transactions
 * that lock the model's row (SELECT … FOR UPDATE), so writers from any machine to one model go one at a
 * time; each write that changes something sends NOTIFY caliper_registry, which followers LISTEN for.
 */
export class PostgresRegistryDatabase implements RegistryDatabase {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  private readonly base: SqlExecutor;

  private constructor(
    private readonly uri: string,
    private readonly pool: pg.Pool,
  ) {
    this.location = redactedUri(uri);
    this.base = executor((sql, params) => this.pool.query(numberedPlaceholders(sql), params as SqlValue[]));
  }

  static async connect(uri: string): Promise<PostgresRegistryDatabase> {
    const pool = new pg.Pool({
      connectionString: uri,
      max: 4,
      types,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 10_000,
    });
    // An idle client losing its server is reported on the pool; the next query reconnects.
    pool.on('error', () => undefined);
    const database = new PostgresRegistryDatabase(uri, pool);
    try {
      await database.write((tx) => migratePostgres(tx));
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw database.unavailable(error);
    }
    return database;
  }

  /** Errors reaching the database become CALIPER_REGISTRY_UNAVAILABLE (503); any other SQL error is a bug and stays as it is. */
  private unavailable(error: unknown): Error {
    if (error instanceof CaliperError) return error;
    const code = (error as { code?: string }).code ?? '';
    const isSqlState = /^[0-9A-Z]{5}$/.test(code);
    // SQLSTATE classes: 08 connection, 28 authorization, 3D no such database, 57P shutdown; otherwise a socket error (ECONNREFUSED…).
    const unreachable = !isSqlState || /^(08|28|3D|57P)/.test(code);
    if (!unreachable) return error as Error;
    return new CaliperError(
      'CALIPER_REGISTRY_UNAVAILABLE',
      `registry ${this.location}: ${(error as Error).message || code || 'cannot connect'}`,
      { cause: error },
    );
  }

  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.base.all<T>(sql, params).catch((error: unknown) => {
      throw this.unavailable(error);
    });
  }

  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.base.get<T>(sql, params).catch((error: unknown) => {
      throw this.unavailable(error);
    });
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<void> {
    return this.base.run(sql, params).catch((error: unknown) => {
      throw this.unavailable(error);
    });
  }

  async write<T>(work: (tx: WriteTransaction) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.unavailable(error);
      }
      let notify = false;
      const inner = executor((sql, params) => client.query(numberedPlaceholders(sql), params as SqlValue[]));
      const tx: WriteTransaction = {
        ...inner,
        lockModel: async (name) => {
          await inner.run('SELECT 1 FROM models WHERE name = ? FOR UPDATE', [name]);
        },
        changed: () => {
          notify = true;
        },
      };
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await work(tx);
        if (notify) await client.query('SELECT pg_notify($1, $2)', [REGISTRY_CHANNEL, String(process.pid)]);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        const code = (error as { code?: string }).code;
        if (code && RETRYABLE.has(code) && attempt < 8) {
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
          continue;
        }
        throw this.unavailable(error);
      } finally {
        client.release(broken);
      }
    }
  }

  async changeStamp(): Promise<string> {
    const row = await this.get<{ n: number; last: number }>(
      'SELECT count(*) AS n, coalesce(max(id), 0) AS last FROM history',
    );
    return `${row?.n ?? 0}:${row?.last ?? 0}`;
  }

  async watch(listener: () => void, onError: (error: Error) => void): Promise<() => Promise<void>> {
    const client = new pg.Client({
      connectionString: this.uri,
      types,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
    });
    let stopped = false;
    const failed = (error: Error): void => {
      if (stopped) return;
      stopped = true;
      client.end().catch(() => undefined);
      onError(error);
    };
    client.on('error', failed);
    client.on('end', () => failed(new Error('the LISTEN connection closed')));
    client.on('notification', (message) => {
      if (message.channel === REGISTRY_CHANNEL) listener();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${REGISTRY_CHANNEL}`);
    } catch (error) {
      stopped = true;
      await client.end().catch(() => undefined);
      throw this.unavailable(error);
    }
    return async () => {
      if (stopped) return;
      stopped = true;
      await client.end().catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
