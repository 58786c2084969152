import type { Database } from 'better-sqlite3';

/**
 * The registry's schema, one migration per step; PRAGMA user_version records how many have run.
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
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database up to SCHEMA_VERSION; concurrent openers serialize on the write lock. */
export function migrate(db: Database): void {
  const current = (): number => db.pragma('user_version', { simple: true }) as number;
  if (current() === SCHEMA_VERSION) return;
  db.transaction(() => {
    const from = current();
    if (from > SCHEMA_VERSION) {
      throw new Error(`registry schema version ${from} is newer than this Caliper understands (${SCHEMA_VERSION}); upgrade Caliper`);
    }
    for (let step = from; step < SCHEMA_VERSION; step++) db.exec(MIGRATIONS[step]!);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
