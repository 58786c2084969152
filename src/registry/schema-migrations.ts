import type { Database } from 'better-sqlite3';
import type { SqlExecutor } from './registry-database.ts';

/**
 * The registry's schema, one migration per step, written in SQLite's SQL; PostgreSQL runs the same
 * steps through `postgresStatement` (which only swaps column types). SQLite's PRAGMA user_version, or
 * PostgreSQL's caliper_schema table, records how many have run.
 * Migrations only ever append: a released step is never edited.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE models (
     name TEXT PRIMARY KEY,
     description TEXT,
     last_version INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE versions (
     model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
     version INTEGER NOT NULL,
     stage TEXT NOT NULL DEFAULT 'None',
     source TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     size INTEGER NOT NULL,
     signature TEXT NOT NULL,
     config TEXT NOT NULL,
     description TEXT,
     tags TEXT NOT NULL DEFAULT '{}',
     metrics TEXT NOT NULL DEFAULT '{}',
     created_at TEXT NOT NULL,
     created_by TEXT NOT NULL,
     stage_updated_at TEXT NOT NULL,
     PRIMARY KEY (model, version)
   );
   CREATE TABLE aliases (
     model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
     alias TEXT NOT NULL,
     version INTEGER NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (model, alias)
   );
   CREATE TABLE history (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     model TEXT NOT NULL,
     version INTEGER,
     event TEXT NOT NULL,
     from_value TEXT,
     to_value TEXT,
     actor TEXT NOT NULL,
     at TEXT NOT NULL
   );
   CREATE INDEX history_model ON history(model, id);`,
  `CREATE TABLE traffic (
     model TEXT PRIMARY KEY REFERENCES models(name) ON DELETE CASCADE,
     canary_target TEXT,
     canary_weight REAL,
     shadow_target TEXT,
     shadow_fraction REAL,
     updated_at TEXT NOT NULL
   );`,
  `CREATE TABLE replicas (
     model TEXT NOT NULL,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     target TEXT NOT NULL,
     state TEXT NOT NULL,
     version INTEGER,
     since TEXT,
     failed_version INTEGER,
     reason TEXT,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (model, host, pid)
   );`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings a SQLite database up to SCHEMA_VERSION; concurrent openers serialize on the write lock. */
export function migrateSqlite(db: Database): void {
  const current = (): number => db.pragma('user_version', { simple: true }) as number;
  if (current() === SCHEMA_VERSION) return;
  db.transaction(() => {
    const from = current();
    if (from > SCHEMA_VERSION) {
      throw new Error(
        `registry schema version ${from} is newer than this Caliper understands (${SCHEMA_VERSION}); upgrade Caliper`,
      );
    }
    for (let step = from; step < SCHEMA_VERSION; step++) db.exec(MIGRATIONS[step]!);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** A migration step in PostgreSQL's types: 64-bit sizes, a serial history id, double-precision weights. */
export function postgresStatement(step: string): string {
  return step
    .replace(/INTEGER PRIMARY KEY AUTOINCREMENT/g, 'SERIAL PRIMARY KEY')
    .replace(/\bsize INTEGER\b/g, 'size BIGINT')
    .replace(/\bREAL\b/g, 'DOUBLE PRECISION');
}

/** A key for pg_advisory_xact_lock: openers of one PostgreSQL registry migrate one at a time. */
const MIGRATION_LOCK = 0x63616c69;

/** Brings a PostgreSQL database up to SCHEMA_VERSION inside the caller's transaction. */
export async function migratePostgres(tx: SqlExecutor): Promise<void> {
  await tx.run(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
  await tx.run('CREATE TABLE IF NOT EXISTS caliper_schema (version INTEGER NOT NULL)');
  const row = await tx.get<{ version: number }>('SELECT version FROM caliper_schema');
  const from = row?.version ?? 0;
  if (from > SCHEMA_VERSION) {
    throw new Error(
      `registry schema version ${from} is newer than this Caliper understands (${SCHEMA_VERSION}); upgrade Caliper`,
    );
  }
  for (let step = from; step < SCHEMA_VERSION; step++) {
    for (const statement of postgresStatement(MIGRATIONS[step]!)
      .split(';')
      .map((s) => s.trim())
      .filter(Boolean))
      await tx.run(statement);
  }
  if (row) await tx.run('UPDATE caliper_schema SET version = ?', [SCHEMA_VERSION]);
  else await tx.run('INSERT INTO caliper_schema (version) VALUES (?)', [SCHEMA_VERSION]);
}
