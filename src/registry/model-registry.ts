import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import { ArtifactStore, type ArtifactRepository } from './artifact-store.ts';
import { checkAlias, checkModelName, type Stage } from './model-stage.ts';
import { formatModelUri, formatSelector, parseSelector, type VersionSelector } from './model-uri.ts';
import type { RegistryDatabase, SqlExecutor, WriteTransaction } from './registry-database.ts';
import { openArtifactStore, registryLocation, type RegistryOptions } from './registry-location.ts';
import {
  BUNDLED_FILES_TAG,
  bundledArtifacts,
  bundledFiles,
  checkRegistration,
  configForName,
  modelFolderOf,
} from './registration-check.ts';
import { REGISTRY_DB_FILE, SqliteRegistryDatabase } from './sqlite-database.ts';

export interface RegisteredVersion {
  name: string;
  version: number;
  stage: Stage;
  aliases: string[];
  /** Where the file was registered from. */
  source: string;
  sha256: string;
  size: number;
  signature: ModelSignature;
  /** model.yaml text as registered. */
  config: string;
  description?: string;
  tags: Record<string, string>;
  metrics: Record<string, number>;
  createdAt: string;
  createdBy: string;
  stageUpdatedAt: string;
}

export interface RegisteredModel {
  name: string;
  description?: string;
  createdAt: string;
  updatedAt: string;
  versions: number[];
  latestVersion?: number;
  /** Versions per stage (those in None left out). */
  stages: Partial<Record<Stage, number[]>>;
  aliases: Record<string, number>;
}

export type HistoryEvent =
  | 'registered'
  | 'stage'
  | 'alias_set'
  | 'alias_removed'
  | 'version_deleted'
  | 'model_deleted'
  | 'traffic'
  /** A server could not load (or run) the version it was told to serve: `to` says why, `actor` which server. */
  | 'load_failed'
  /** A server serves this version in place of one that failed to load: `from` is the failed version's URI. */
  | 'served_instead';

export interface HistoryEntry {
  id: number;
  model: string;
  version?: number;
  event: HistoryEvent;
  from?: string;
  to?: string;
  actor: string;
  at: string;
}

/** How a model's traffic is split: a canary answers `weight` of requests; a shadow sees `fraction` of them, silently. */
export interface TrafficSettings {
  canary?: { target: VersionSelector; weight: number };
  shadow?: { target: VersionSelector; fraction: number };
}

export interface RegisterRequest {
  file: string;
  configFile: string;
  name: string;
  description?: string;
  tags?: Record<string, string>;
  metrics?: Record<string, number>;
  actor?: string;
}

interface VersionRow {
  model: string;
  version: number;
  stage: Stage;
  source: string;
  sha256: string;
  size: number;
  signature: string;
  config: string;
  description: string | null;
  tags: string;
  metrics: string;
  created_at: string;
  created_by: string;
  stage_updated_at: string;
}
interface ModelRow {
  name: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}
interface HistoryRow {
  id: number;
  model: string;
  version: number | null;
  event: HistoryEvent;
  from_value: string | null;
  to_value: string | null;
  actor: string;
  at: string;
}
/** Which server serves which version of a model: each server following the registry keeps its row up to date. */
export interface ReplicaRecord {
  model: string;
  host: string;
  pid: number;
  /** The URI the server follows, e.g. models:/fraud/Production. */
  target: string;
  state: 'loading' | 'ready' | 'failed' | 'unavailable';
  /** The version it answers with, and since when. */
  version?: number;
  since?: string;
  /** A version it could not load, and why (the served version, if any, kept answering). */
  failedVersion?: number;
  reason?: string;
  updatedAt: string;
}

interface ReplicaRow {
  model: string;
  host: string;
  pid: number;
  target: string;
  state: ReplicaRecord['state'];
  version: number | null;
  since: string | null;
  failed_version: number | null;
  reason: string | null;
  updated_at: string;
}
interface TrafficRow {
  canary_target: string | null;
  canary_weight: number | null;
  shadow_target: string | null;
  shadow_fraction: number | null;
}

export { REGISTRY_DB_FILE };

export function defaultActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

const now = (): string => new Date().toISOString();

/** This process as the registry names a server: host name and pid. */
export const thisServer = (): { host: string; pid: number } => ({ host: hostname(), pid: process.pid });

/**
 * The model registry: metadata in a database (SQLite in a folder, or PostgreSQL shared by several
 * machines; the same tables and statements) and model files in a content-addressed artifact store
 * (a local folder, or an S3-compatible bucket). Every write is one transaction holding the model's lock,
 * so concurrent writers from any process or machine never lose an update.
 */
export class ModelRegistry {
  private constructor(
    readonly database: RegistryDatabase,
    readonly artifacts: ArtifactRepository,
  ) {}

  /** The embedded registry: SQLite and artifacts under `home` (opened synchronously). */
  static open(home: string, artifacts?: ArtifactRepository): ModelRegistry {
    return new ModelRegistry(new SqliteRegistryDatabase(resolve(home)), artifacts ?? new ArtifactStore(resolve(home)));
  }

  /** A registry by URI: --registry DIR|postgres://… and --artifacts DIR|s3://… (or their environment forms). */
  static async connect(options: RegistryOptions = {}): Promise<ModelRegistry> {
    const location = registryLocation(options.registry);
    const artifacts = await openArtifactStore(location, options);
    if (location.kind === 'sqlite') return ModelRegistry.open(location.home, artifacts);
    // pg is loaded only for a PostgreSQL registry.
    const { PostgresRegistryDatabase } = await import('./postgres-database.ts');
    return new ModelRegistry(await PostgresRegistryDatabase.connect(location.uri), artifacts);
  }

  /** The folder (SQLite) or the URI without its password (PostgreSQL). */
  get location(): string {
    return this.database.location;
  }

  /** The same as location (the registry folder for SQLite). */
  get home(): string {
    return this.database.location;
  }

  async close(): Promise<void> {
    await this.database.close();
    (this.artifacts as { close?: () => void }).close?.();
  }

  /** Changes whenever a write commits, from any connection: a cheap way to notice that something moved. */
  changeStamp(): Promise<string> {
    return this.database.changeStamp();
  }

  private write<T>(work: (tx: WriteTransaction) => Promise<T>): Promise<T> {
    return this.database.write(async (tx) => {
      tx.changed();
      return work(tx);
    });
  }

  private async recordHistory(
    tx: SqlExecutor,
    model: string,
    version: number | undefined,
    event: HistoryEvent,
    from: string | undefined,
    to: string | undefined,
    actor: string,
  ): Promise<void> {
    await tx.run(
      'INSERT INTO history (model, version, event, from_value, to_value, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [model, version ?? null, event, from ?? null, to ?? null, actor, now()],
    );
  }

  /** Checks the artifact and model.yaml, stores the file by hash and creates the next version (stage None). */
  async register(request: RegisterRequest): Promise<RegisteredVersion> {
    const name = checkModelName(request.name);
    const file = resolve(request.file);
    const configFile = resolve(request.configFile);
    let configText: string;
    try {
      configText = readFileSync(configFile, 'utf8');
    } catch (error) {
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `${request.configFile}: cannot read model.yaml (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    let staged;
    try {
      staged = await this.artifacts.stage(file);
    } catch (error) {
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `${request.file}: cannot read the model file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    try {
      const signature = await checkRegistration(staged.temporaryPath, request.file, configText, configFile, name);
      const bundle = await this.storeBundledFiles(
        configForName(configText, request.configFile, modelFolderOf(configFile), name),
        modelFolderOf(configFile),
      );
      await this.artifacts.commit(staged);
      const tags = {
        ...(request.tags ?? {}),
        ...(Object.keys(bundle).length > 0 ? { [BUNDLED_FILES_TAG]: JSON.stringify(bundle) } : {}),
      };
      const actor = request.actor ?? defaultActor();
      const version = await this.write(async (tx) => {
        const at = now();
        await tx.run(
          'INSERT INTO models (name, description, last_version, created_at, updated_at) VALUES (?, NULL, 0, ?, ?) ON CONFLICT(name) DO NOTHING',
          [name, at, at],
        );
        await tx.lockModel(name);
        const next =
          (await tx.get<{ last_version: number }>('SELECT last_version FROM models WHERE name = ?', [name]))!
            .last_version + 1;
        await tx.run('UPDATE models SET last_version = ?, updated_at = ? WHERE name = ?', [next, at, name]);
        await tx.run(
          `INSERT INTO versions (model, version, stage, source, sha256, size, signature, config, description, tags, metrics, created_at, created_by, stage_updated_at)
          VALUES (?, ?, 'None', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            name,
            next,
            file,
            staged.sha256,
            staged.size,
            JSON.stringify(signature),
            configText,
            request.description ?? null,
            JSON.stringify(tags),
            JSON.stringify(request.metrics ?? {}),
            at,
            actor,
            at,
          ],
        );
        await this.recordHistory(tx, name, next, 'registered', undefined, `sha256:${staged.sha256}`, actor);
        return next;
      });
      return await this.version(name, version);
    } finally {
      this.artifacts.discard(staged);
    }
  }

  private async modelRow(name: string, db: SqlExecutor = this.database): Promise<ModelRow> {
    const row = await db.get<ModelRow>('SELECT name, description, created_at, updated_at FROM models WHERE name = ?', [
      name,
    ]);
    if (!row) {
      const known = (await db.all<{ name: string }>('SELECT name FROM models ORDER BY name')).map((r) => r.name);
      throw new CaliperError(
        'CALIPER_MODEL_NOT_FOUND',
        `model "${name}" is not registered (registered models: ${known.join(', ') || 'none'})`,
      );
    }
    return row;
  }

  private async aliasesOf(name: string, db: SqlExecutor = this.database): Promise<Record<string, number>> {
    const rows = await db.all<{ alias: string; version: number }>(
      'SELECT alias, version FROM aliases WHERE model = ? ORDER BY alias',
      [name],
    );
    return Object.fromEntries(rows.map((r) => [r.alias, r.version]));
  }

  private toVersion(row: VersionRow, aliases: Record<string, number>): RegisteredVersion {
    const record: RegisteredVersion = {
      name: row.model,
      version: row.version,
      stage: row.stage,
      aliases: Object.entries(aliases)
        .filter(([, v]) => v === row.version)
        .map(([a]) => a),
      source: row.source,
      sha256: row.sha256,
      size: row.size,
      signature: JSON.parse(row.signature) as ModelSignature,
      config: row.config,
      tags: JSON.parse(row.tags) as Record<string, string>,
      metrics: JSON.parse(row.metrics) as Record<string, number>,
      createdAt: row.created_at,
      createdBy: row.created_by,
      stageUpdatedAt: row.stage_updated_at,
    };
    if (row.description !== null) record.description = row.description;
    return record;
  }

  async listModels(): Promise<RegisteredModel[]> {
    const rows = await this.database.all<{ name: string }>('SELECT name FROM models ORDER BY name');
    return Promise.all(rows.map((r) => this.model(r.name)));
  }

  async model(name: string, db: SqlExecutor = this.database): Promise<RegisteredModel> {
    const row = await this.modelRow(name, db);
    const versions = await db.all<{ version: number; stage: Stage }>(
      'SELECT version, stage FROM versions WHERE model = ? ORDER BY version',
      [name],
    );
    const stages: Partial<Record<Stage, number[]>> = {};
    for (const v of versions) if (v.stage !== 'None') (stages[v.stage] ??= []).push(v.version);
    const model: RegisteredModel = {
      name,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      versions: versions.map((v) => v.version),
      stages,
      aliases: await this.aliasesOf(name, db),
    };
    if (versions.length > 0) model.latestVersion = versions[versions.length - 1]!.version;
    if (row.description !== null) model.description = row.description;
    return model;
  }

  async versions(name: string): Promise<RegisteredVersion[]> {
    await this.modelRow(name);
    const aliases = await this.aliasesOf(name);
    return (await this.database.all<VersionRow>('SELECT * FROM versions WHERE model = ? ORDER BY version', [name])).map(
      (r) => this.toVersion(r, aliases),
    );
  }

  async version(name: string, version: number, db: SqlExecutor = this.database): Promise<RegisteredVersion> {
    await this.modelRow(name, db);
    const row = await db.get<VersionRow>('SELECT * FROM versions WHERE model = ? AND version = ?', [name, version]);
    if (!row) {
      const known = (
        await db.all<{ version: number }>('SELECT version FROM versions WHERE model = ? ORDER BY version', [name])
      ).map((r) => r.version);
      throw new CaliperError(
        'CALIPER_VERSION_NOT_FOUND',
        `model "${name}" has no version ${version} (versions: ${known.join(', ') || 'none'})`,
      );
    }
    return this.toVersion(row, await this.aliasesOf(name, db));
  }

  /** The version a selector names now: a number, the highest version in a stage, an alias, or the highest version. */
  async resolve(name: string, selector: VersionSelector): Promise<RegisteredVersion> {
    const uri = formatModelUri({ name, selector });
    switch (selector.kind) {
      case 'version':
        return this.version(name, selector.version);
      case 'latest': {
        const model = await this.model(name);
        if (model.latestVersion === undefined)
          throw new CaliperError('CALIPER_VERSION_NOT_FOUND', `${uri}: model "${name}" has no versions`);
        return this.version(name, model.latestVersion);
      }
      case 'stage': {
        const model = await this.model(name);
        const inStage = model.stages[selector.stage];
        if (!inStage || inStage.length === 0) {
          const summary = Object.entries(model.stages)
            .map(([s, vs]) => `${s}: ${vs.join(', ')}`)
            .join('; ');
          throw new CaliperError(
            'CALIPER_VERSION_NOT_FOUND',
            `${uri}: model "${name}" has no version in stage ${selector.stage} (${summary || 'every version is in stage None'})`,
          );
        }
        return this.version(name, inStage[inStage.length - 1]!);
      }
      case 'alias': {
        const aliases = (await this.model(name)).aliases;
        const version = aliases[selector.alias];
        if (version === undefined) {
          throw new CaliperError(
            'CALIPER_NOT_FOUND',
            `${uri}: model "${name}" has no alias "${selector.alias}" (aliases: ${Object.keys(aliases).join(', ') || 'none'})`,
          );
        }
        return this.version(name, version);
      }
    }
  }

  /**
   * Sets (or, with an empty text, clears) the description of a registered model or, with `version`, of one version
   * (MLflow's update_registered_model / update_model_version). Answers the model or version as now recorded.
   * Errors: CALIPER_MODEL_NOT_FOUND, CALIPER_VERSION_NOT_FOUND.
   */
  async describe(name: string, description: string): Promise<RegisteredModel>;
  async describe(name: string, description: string, version: number): Promise<RegisteredVersion>;
  async describe(name: string, description: string, version?: number): Promise<RegisteredModel | RegisteredVersion>;
  async describe(name: string, description: string, version?: number): Promise<RegisteredModel | RegisteredVersion> {
    const text = description.trim() === '' ? null : description;
    await this.write(async (tx) => {
      await tx.lockModel(name);
      const at = now();
      if (version === undefined) {
        await this.modelRow(name, tx);
        await tx.run('UPDATE models SET description = ?, updated_at = ? WHERE name = ?', [text, at, name]);
      } else {
        await this.version(name, version, tx);
        await tx.run('UPDATE versions SET description = ? WHERE model = ? AND version = ?', [text, name, version]);
        await tx.run('UPDATE models SET updated_at = ? WHERE name = ?', [at, name]);
      }
    });
    return version === undefined ? this.model(name) : this.version(name, version);
  }

  /** Moves a version to a stage; with archiveExisting the versions already in that stage go to Archived. */
  async setStage(
    name: string,
    version: number,
    stage: Stage,
    options: { archiveExisting?: boolean; actor?: string } = {},
  ): Promise<RegisteredVersion> {
    const actor = options.actor ?? defaultActor();
    await this.write(async (tx) => {
      await tx.lockModel(name);
      const current = await this.version(name, version, tx);
      const at = now();
      if (options.archiveExisting && stage !== 'None' && stage !== 'Archived') {
        const others = await tx.all<{ version: number }>(
          'SELECT version FROM versions WHERE model = ? AND stage = ? AND version != ? ORDER BY version',
          [name, stage, version],
        );
        for (const other of others) {
          await tx.run("UPDATE versions SET stage = 'Archived', stage_updated_at = ? WHERE model = ? AND version = ?", [
            at,
            name,
            other.version,
          ]);
          await this.recordHistory(tx, name, other.version, 'stage', stage, 'Archived', actor);
        }
      }
      if (current.stage !== stage) {
        await tx.run('UPDATE versions SET stage = ?, stage_updated_at = ? WHERE model = ? AND version = ?', [
          stage,
          at,
          name,
          version,
        ]);
        await this.recordHistory(tx, name, version, 'stage', current.stage, stage, actor);
      }
      await tx.run('UPDATE models SET updated_at = ? WHERE name = ?', [at, name]);
    });
    return this.version(name, version);
  }

  /** Points an alias at a version (moving it if it pointed elsewhere). */
  async setAlias(name: string, alias: string, version: number, actor = defaultActor()): Promise<RegisteredVersion> {
    checkAlias(alias);
    await this.write(async (tx) => {
      await tx.lockModel(name);
      await this.version(name, version, tx);
      const previous = (await this.aliasesOf(name, tx))[alias];
      if (previous === version) return;
      const at = now();
      await tx.run(
        'INSERT INTO aliases (model, alias, version, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at',
        [name, alias, version, at],
      );
      await this.recordHistory(
        tx,
        name,
        version,
        'alias_set',
        previous === undefined ? undefined : `${alias}=${previous}`,
        `${alias}=${version}`,
        actor,
      );
      await tx.run('UPDATE models SET updated_at = ? WHERE name = ?', [at, name]);
    });
    return this.version(name, version);
  }

  async removeAlias(name: string, alias: string, actor = defaultActor()): Promise<void> {
    await this.write(async (tx) => {
      await tx.lockModel(name);
      const previous = (await this.aliasesOf(name, tx))[alias];
      if (previous === undefined)
        throw new CaliperError('CALIPER_NOT_FOUND', `model "${name}" has no alias "${alias}"`);
      await tx.run('DELETE FROM aliases WHERE model = ? AND alias = ?', [name, alias]);
      await this.recordHistory(tx, name, previous, 'alias_removed', `${alias}=${previous}`, undefined, actor);
    });
  }

  archive(name: string, version: number, actor = defaultActor()): Promise<RegisteredVersion> {
    return this.setStage(name, version, 'Archived', { actor });
  }

  private refusesDelete(version: RegisteredVersion): string | undefined {
    if (version.stage === 'Production' || version.stage === 'Staging') return `it is in stage ${version.stage}`;
    if (version.aliases.length > 0) return `aliases point at it (${version.aliases.join(', ')})`;
    return undefined;
  }

  /** Deletes one version (its aliases go with it); a version in Staging/Production or under an alias needs force. */
  async deleteVersion(name: string, version: number, options: { force?: boolean; actor?: string } = {}): Promise<void> {
    const actor = options.actor ?? defaultActor();
    const sha = await this.write(async (tx) => {
      await tx.lockModel(name);
      const found = await this.version(name, version, tx);
      const why = this.refusesDelete(found);
      if (why && !options.force)
        throw new CaliperError(
          'CALIPER_CONFLICT',
          `models:/${name}/${version}: not deleted because ${why}; archive it first or pass --force`,
        );
      await tx.run('DELETE FROM aliases WHERE model = ? AND version = ?', [name, version]);
      await tx.run('DELETE FROM versions WHERE model = ? AND version = ?', [name, version]);
      await this.recordHistory(tx, name, version, 'version_deleted', found.stage, undefined, actor);
      return found.sha256;
    });
    await this.dropUnreferenced([sha]);
  }

  async deleteModel(name: string, options: { force?: boolean; actor?: string } = {}): Promise<void> {
    const actor = options.actor ?? defaultActor();
    const shas = await this.write(async (tx) => {
      await tx.lockModel(name);
      await this.modelRow(name, tx);
      const aliases = await this.aliasesOf(name, tx);
      const versions = (
        await tx.all<VersionRow>('SELECT * FROM versions WHERE model = ? ORDER BY version', [name])
      ).map((r) => this.toVersion(r, aliases));
      const held = versions.map((v) => [v, this.refusesDelete(v)] as const).find(([, why]) => why !== undefined);
      if (held && !options.force)
        throw new CaliperError(
          'CALIPER_CONFLICT',
          `model "${name}": not deleted because version ${held[0].version}: ${held[1]}; pass --force`,
        );
      // Child rows first: PostgreSQL's and SQLite's cascades then have nothing left to do.
      for (const table of ['aliases', 'traffic', 'versions'])
        await tx.run(`DELETE FROM ${table} WHERE model = ?`, [name]);
      await tx.run('DELETE FROM models WHERE name = ?', [name]);
      await this.recordHistory(
        tx,
        name,
        undefined,
        'model_deleted',
        `versions ${versions.map((v) => v.version).join(',')}`,
        undefined,
        actor,
      );
      return versions.map((v) => v.sha256);
    });
    await this.dropUnreferenced(shas);
  }

  private async dropUnreferenced(shas: string[]): Promise<void> {
    for (const sha of new Set(shas)) {
      const used = await this.database.get('SELECT 1 AS used FROM versions WHERE sha256 = ? LIMIT 1', [sha]);
      if (!used) await this.artifacts.remove(sha);
    }
  }

  async history(name: string): Promise<HistoryEntry[]> {
    const rows = await this.database.all<HistoryRow>('SELECT * FROM history WHERE model = ? ORDER BY id', [name]);
    if (rows.length === 0) await this.modelRow(name);
    return rows.map((r) => {
      const entry: HistoryEntry = { id: r.id, model: r.model, event: r.event, actor: r.actor, at: r.at };
      if (r.version !== null) entry.version = r.version;
      if (r.from_value !== null) entry.from = r.from_value;
      if (r.to_value !== null) entry.to = r.to_value;
      return entry;
    });
  }

  async traffic(name: string, db: SqlExecutor = this.database): Promise<TrafficSettings> {
    const row = await db.get<TrafficRow>(
      'SELECT canary_target, canary_weight, shadow_target, shadow_fraction FROM traffic WHERE model = ?',
      [name],
    );
    const settings: TrafficSettings = {};
    if (row?.canary_target && row.canary_weight !== null)
      settings.canary = { target: parseSelector(name, row.canary_target), weight: row.canary_weight };
    if (row?.shadow_target && row.shadow_fraction !== null)
      settings.shadow = { target: parseSelector(name, row.shadow_target), fraction: row.shadow_fraction };
    return settings;
  }

  /** Replaces the model's traffic policy; an empty settings object ends canary and shadow. */
  async setTraffic(name: string, settings: TrafficSettings, actor = defaultActor()): Promise<TrafficSettings> {
    for (const [field, value] of [
      ['canary.weight', settings.canary?.weight],
      ['shadow.fraction', settings.shadow?.fraction],
    ] as const) {
      if (value !== undefined && (!Number.isFinite(value) || value < 0 || value > 1)) {
        throw new CaliperError('CALIPER_INVALID_INPUT', `${field}: expected a fraction from 0 to 1, got ${value}`);
      }
    }
    await this.write(async (tx) => {
      await tx.lockModel(name);
      await this.modelRow(name, tx);
      const before = describeTraffic(await this.traffic(name, tx));
      await tx.run(
        `INSERT INTO traffic (model, canary_target, canary_weight, shadow_target, shadow_fraction, updated_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(model) DO UPDATE SET canary_target = excluded.canary_target, canary_weight = excluded.canary_weight,
        shadow_target = excluded.shadow_target, shadow_fraction = excluded.shadow_fraction, updated_at = excluded.updated_at`,
        [
          name,
          settings.canary ? formatSelector(settings.canary.target) : null,
          settings.canary?.weight ?? null,
          settings.shadow ? formatSelector(settings.shadow.target) : null,
          settings.shadow?.fraction ?? null,
          now(),
        ],
      );
      await this.recordHistory(tx, name, undefined, 'traffic', before, describeTraffic(settings), actor);
    });
    return this.traffic(name);
  }

  /**
   * Versions a selector named before, to fall back on when the one it names now cannot be loaded, best first:
   * for a stage, the other versions in it (highest first), then those that left it (most recently left first);
   * for an alias, the versions it pointed at before (most recent first). Deleted versions and `exclude` are left
   * out; an explicit version number or "latest" has no lineage.
   */
  async lineage(name: string, selector: VersionSelector, exclude: number): Promise<RegisteredVersion[]> {
    const model = await this.model(name);
    const existing = new Set(model.versions);
    const order: number[] = [];
    const add = (v: number): void => {
      if (v !== exclude && existing.has(v) && !order.includes(v)) order.push(v);
    };
    if (selector.kind === 'stage') {
      for (const v of [...(model.stages[selector.stage] ?? [])].reverse()) add(v);
      const left = await this.database.all<{ version: number }>(
        "SELECT version FROM history WHERE model = ? AND event = 'stage' AND from_value = ? AND version IS NOT NULL ORDER BY id DESC",
        [name, selector.stage],
      );
      for (const row of left) add(Number(row.version));
    } else if (selector.kind === 'alias') {
      const moves = await this.database.all<{ from_value: string | null; to_value: string | null }>(
        "SELECT from_value, to_value FROM history WHERE model = ? AND event IN ('alias_set', 'alias_removed') ORDER BY id DESC",
        [name],
      );
      const prefix = `${selector.alias}=`;
      for (const row of moves) {
        for (const value of [row.to_value, row.from_value]) {
          if (value?.startsWith(prefix)) add(Number(value.slice(prefix.length)));
        }
      }
    }
    return Promise.all(order.map((v) => this.version(name, v)));
  }

  /**
   * Writes a server's load outcome into the model's history (`load_failed` with the reason, or `served_instead`).
   * Like a replica row it is not a change followers react to, so recording a failure does not make every server
   * sync (and try the failing version) again.
   */
  async recordLoadEvent(
    name: string,
    version: number,
    event: 'load_failed' | 'served_instead',
    detail: { from?: string; to?: string },
    actor: string,
  ): Promise<void> {
    await this.recordHistory(this.database, name, version, event, detail.from, detail.to, actor);
  }

  /** Records what this server serves for a model (one row per model, host and pid; not a change followers react to). */
  async recordReplica(record: Omit<ReplicaRecord, 'updatedAt'>): Promise<void> {
    await this.database.run(
      `INSERT INTO replicas (model, host, pid, target, state, version, since, failed_version, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(model, host, pid) DO UPDATE SET target = excluded.target, state = excluded.state, version = excluded.version, since = excluded.since,
      failed_version = excluded.failed_version, reason = excluded.reason, updated_at = excluded.updated_at`,
      [
        record.model,
        record.host,
        record.pid,
        record.target,
        record.state,
        record.version ?? null,
        record.since ?? null,
        record.failedVersion ?? null,
        record.reason ?? null,
        now(),
      ],
    );
  }

  /** Forgets a server's rows (one model, or all of them when it stops). */
  async removeReplica(host: string, pid: number, model?: string): Promise<void> {
    if (model === undefined) await this.database.run('DELETE FROM replicas WHERE host = ? AND pid = ?', [host, pid]);
    else await this.database.run('DELETE FROM replicas WHERE host = ? AND pid = ? AND model = ?', [host, pid, model]);
  }

  /** The servers following a model, as they last reported. */
  async replicas(name: string): Promise<ReplicaRecord[]> {
    const rows = await this.database.all<ReplicaRow>('SELECT * FROM replicas WHERE model = ? ORDER BY host, pid', [
      name,
    ]);
    return rows.map((r) => {
      const record: ReplicaRecord = {
        model: r.model,
        host: r.host,
        pid: r.pid,
        target: r.target,
        state: r.state,
        updatedAt: r.updated_at,
      };
      if (r.version !== null) record.version = r.version;
      if (r.since !== null) record.since = r.since;
      if (r.failed_version !== null) record.failedVersion = r.failed_version;
      if (r.reason !== null) record.reason = r.reason;
      return record;
    });
  }

  /** Stores the files model.yaml names relative to its folder (feature file, hook module); returns path → sha256. */
  private async storeBundledFiles(config: ModelConfig, dir: string): Promise<Record<string, string>> {
    const bundle: Record<string, string> = {};
    for (const path of bundledFiles(config)) {
      let staged;
      try {
        staged = await this.artifacts.stage(resolve(dir, path));
      } catch (error) {
        throw new CaliperError(
          'CALIPER_NOT_FOUND',
          `${join(dir, path)}: model.yaml names this file but it cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
        );
      }
      try {
        await this.artifacts.commit(staged);
        bundle[path] = staged.sha256;
      } finally {
        this.artifacts.discard(staged);
      }
    }
    return bundle;
  }

  /**
   * The version's model.yaml as a config whose relative paths resolve: bundled files are fetched (sha256 checked)
   * into a folder of their own beside the artifact, laid out as they were beside model.yaml.
   */
  async servedConfigOf(version: RegisteredVersion): Promise<ModelConfig> {
    const bundle = bundledArtifacts(version.tags);
    if (Object.keys(bundle).length === 0) return this.configOf(version);
    const dir = join(
      this.artifacts.localDir(version.sha256),
      `bundle-${createHash('sha256').update(JSON.stringify(bundle)).digest('hex').slice(0, 16)}`,
    );
    for (const [path, sha256] of Object.entries(bundle)) {
      const target = join(dir, path);
      if (existsSync(target)) continue;
      const fetched = await this.artifacts.fetch(sha256, `models:/${version.name}/${version.version} (${path})`);
      mkdirSync(dirname(target), { recursive: true });
      const partial = `${target}.${process.pid}.tmp`;
      copyFileSync(fetched, partial);
      renameSync(partial, target);
    }
    const file = `${formatModelUri({ name: version.name, selector: { kind: 'version', version: version.version } })} (model.yaml)`;
    return configForName(version.config, file, dir, version.name);
  }

  /** A version's model.yaml as a config, named as registered; relative paths would resolve in the artifact's folder. */
  configOf(version: RegisteredVersion): ModelConfig {
    const file = `${formatModelUri({ name: version.name, selector: { kind: 'version', version: version.version } })} (model.yaml)`;
    return configForName(version.config, file, this.artifacts.localDir(version.sha256), version.name);
  }

  /** A local path to the artifact once its sha256 has been checked again (downloaded first from an object store). */
  async artifactPath(version: RegisteredVersion): Promise<string> {
    return this.artifacts.fetch(version.sha256, `models:/${version.name}/${version.version}`);
  }
}

export function describeTraffic(settings: TrafficSettings): string {
  const parts: string[] = [];
  if (settings.canary)
    parts.push(`canary ${formatSelector(settings.canary.target)} ${Math.round(settings.canary.weight * 1000) / 10}%`);
  if (settings.shadow)
    parts.push(`shadow ${formatSelector(settings.shadow.target)} ${Math.round(settings.shadow.fraction * 1000) / 10}%`);
  return parts.join(', ') || 'all traffic to the served version';
}
