import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { RegistryDatabase, SqlValue, WriteTransaction } from './registry-database.ts';
import { migrateSqlite } from './schema-migrations.ts';

export const REGISTRY_DB_FILE = 'registry.db';

/**
 * The embedded registry database: SQLite in WAL mode with a busy timeout, every write an IMMEDIATE
 * transaction, so several processes on one machine can write at once. Statements run synchronously;
 * writes in one process are queued so two transactions never share the connection.
 */
export class SqliteRegistryDatabase implements RegistryDatabase {
  readonly dialect = 'sqlite' as const;
  readonly location: string;
  private readonly db: Database.Database;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(home: string) {
    this.location = resolve(home);
    mkdirSync(this.location, { recursive: true });
    this.db = new Database(resolve(this.location, REGISTRY_DB_FILE), { timeout: 10_000 });
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('synchronous = NORMAL');
    migrateSqlite(this.db);
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return Promise.resolve(this.db.prepare(sql).all(...params) as T[]);
  }

  get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return Promise.resolve(this.db.prepare(sql).get(...params) as T | undefined);
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<void> {
    this.db.prepare(sql).run(...params);
    return Promise.resolve();
  }

  write<T>(work: (tx: WriteTransaction) => Promise<T>): Promise<T> {
    const tx: WriteTransaction = {
      all: (sql, params) => this.all(sql, params),
      get: (sql, params) => this.get(sql, params),
      run: (sql, params) => this.run(sql, params),
      lockModel: () => Promise.resolve(),
      changed: () => undefined,
    };
    const next = this.queue.then(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await work(tx);
        this.db.exec('COMMIT');
        return result;
      } catch (error) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw error;
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  changeStamp(): Promise<string> {
    return Promise.resolve(String(this.db.pragma('data_version', { simple: true })));
  }

  /** The same stamp, read synchronously (SQLite only). */
  changeStampNow(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  async close(): Promise<void> {
    await this.queue;
    this.db.close();
  }
}
