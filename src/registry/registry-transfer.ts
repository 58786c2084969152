import { CaliperError } from '../errors.ts';
import type { ModelRegistry } from './model-registry.ts';
import type { SqlExecutor, SqlValue } from './registry-database.ts';
import { bundledArtifacts } from './registration-check.ts';

/** The tables that make up a registry's content, parents first, with the columns copied (replicas are runtime state and stay behind). */
const TABLES = {
  models: ['name', 'description', 'last_version', 'created_at', 'updated_at'],
  versions: [
    'model',
    'version',
    'stage',
    'source',
    'sha256',
    'size',
    'signature',
    'config',
    'description',
    'tags',
    'metrics',
    'created_at',
    'created_by',
    'stage_updated_at',
  ],
  aliases: ['model', 'alias', 'version', 'updated_at'],
  traffic: ['model', 'canary_target', 'canary_weight', 'shadow_target', 'shadow_fraction', 'updated_at'],
  history: ['id', 'model', 'version', 'event', 'from_value', 'to_value', 'actor', 'at'],
} as const;
type Table = keyof typeof TABLES;
const ORDER: Record<Table, string> = {
  models: 'name',
  versions: 'model, version',
  aliases: 'model, alias',
  traffic: 'model',
  history: 'id',
};

export type RegistryRows = Record<Table, Record<string, SqlValue>[]>;

export interface TransferSummary {
  from: string;
  to: string;
  models: number;
  versions: number;
  aliases: number;
  historyRows: number;
  /** Artifacts copied; the rest were in the target store already. */
  artifactsCopied: number;
}

/** Every row of a registry's content tables, in a stable order (the same for both backends). */
export async function registryRows(db: SqlExecutor): Promise<RegistryRows> {
  const rows = {} as RegistryRows;
  for (const table of Object.keys(TABLES) as Table[]) {
    rows[table] = await db.all<Record<string, SqlValue>>(
      `SELECT ${TABLES[table].join(', ')} FROM ${table} ORDER BY ${ORDER[table]}`,
    );
  }
  return rows;
}

/**
 * Copies a whole registry into another (SQLite → PostgreSQL, or back): every model, version, stage,
 * alias, tag, metric, traffic policy and history row, and every artifact (each checked by its sha256 on
 * the way). The target must not hold any of the source's models; history keeps its ids when the target
 * has none yet. Everything lands in one transaction: a failed copy leaves the target as it was.
 */
export async function transferRegistry(source: ModelRegistry, target: ModelRegistry): Promise<TransferSummary> {
  const rows = await registryRows(source.database);
  const names = rows.models.map((m) => String(m.name));
  const existing = new Set((await target.database.all<{ name: string }>('SELECT name FROM models')).map((r) => r.name));
  const clashing = names.filter((n) => existing.has(n));
  if (clashing.length > 0) {
    throw new CaliperError(
      'CALIPER_CONFLICT',
      `${target.location} already has model${clashing.length > 1 ? 's' : ''} ${clashing.join(', ')}; nothing was copied (delete them there first)`,
    );
  }

  let artifactsCopied = 0;
  // Each version's model file and the files bundled with it (feature files, hook modules).
  const owners = new Map<string, Record<string, unknown>>();
  for (const v of rows.versions) {
    owners.set(String(v.sha256), v);
    const tags = JSON.parse(String(v.tags ?? '{}')) as Record<string, string>;
    for (const sha of Object.values(bundledArtifacts(tags))) if (!owners.has(sha)) owners.set(sha, v);
  }
  for (const [sha256, owner] of owners) {
    if (await target.artifacts.has(sha256)) continue;
    const path = await source.artifacts.fetch(sha256, `models:/${String(owner.model)}/${String(owner.version)}`);
    const staged = await target.artifacts.stage(path);
    try {
      if (staged.sha256 !== sha256)
        throw new CaliperError(
          'CALIPER_ARTIFACT_CORRUPT',
          `artifact ${sha256} changed while it was copied (now ${staged.sha256})`,
        );
      await target.artifacts.commit(staged);
      artifactsCopied++;
    } finally {
      target.artifacts.discard(staged);
    }
  }

  await target.database.write(async (tx) => {
    tx.changed();
    const keepIds = (await tx.get<{ n: number }>('SELECT count(*) AS n FROM history'))!.n === 0;
    for (const table of Object.keys(TABLES) as Table[]) {
      const columns = TABLES[table].filter((c) => keepIds || c !== 'id');
      const insert = `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`;
      for (const row of rows[table])
        await tx.run(
          insert,
          columns.map((c) => row[c] ?? null),
        );
    }
    if (keepIds && rows.history.length > 0 && target.database.dialect === 'postgres') {
      // Explicit ids leave the serial sequence behind: the next history row continues after the copied ones.
      await tx.run("SELECT setval(pg_get_serial_sequence('history', 'id'), (SELECT max(id) FROM history))");
    }
  });
  return {
    from: source.location,
    to: target.location,
    models: rows.models.length,
    versions: rows.versions.length,
    aliases: rows.aliases.length,
    historyRows: rows.history.length,
    artifactsCopied,
  };
}
