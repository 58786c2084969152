import { mkdirSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import { ArtifactStore } from './artifact-store.ts';
import { checkAlias, checkModelName, type Stage } from './model-stage.ts';
import { formatModelUri, formatSelector, parseSelector, type VersionSelector } from './model-uri.ts';
import { checkRegistration, configForName } from './registration-check.ts';
import { migrate } from './schema-migrations.ts';

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

export type HistoryEvent = 'registered' | 'stage' | 'alias_set' | 'alias_removed' | 'version_deleted' | 'model_deleted' | 'traffic';

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
  model: string; version: number; stage: Stage; source: string; sha256: string; size: number; signature: string; config: string;
  description: string | null; tags: string; metrics: string; created_at: string; created_by: string; stage_updated_at: string;
}
interface ModelRow { name: string; description: string | null; created_at: string; updated_at: string }
interface HistoryRow { id: number; model: string; version: number | null; event: HistoryEvent; from_value: string | null; to_value: string | null; actor: string; at: string }
interface TrafficRow { canary_target: string | null; canary_weight: number | null; shadow_target: string | null; shadow_fraction: number | null }

export const REGISTRY_DB_FILE = 'registry.db';

export function defaultActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

const now = (): string => new Date().toISOString();

/**
 * The model registry: SQLite metadata (WAL, busy timeout, every write in an IMMEDIATE transaction so
 * several processes can write at once) and a content-addressed artifact store under one home folder.
 */
export class ModelRegistry {
  readonly artifacts: ArtifactStore;
  private readonly db: Database.Database;

  private constructor(readonly home: string) {
    mkdirSync(home, { recursive: true });
    this.db = new Database(resolve(home, REGISTRY_DB_FILE), { timeout: 10_000 });
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('synchronous = NORMAL');
    migrate(this.db);
    this.artifacts = new ArtifactStore(home);
  }

  static open(home: string): ModelRegistry {
    return new ModelRegistry(resolve(home));
  }

  close(): void {
    this.db.close();
  }

  /** Changes whenever another connection commits: a cheap way to notice that something moved. */
  changeStamp(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  private write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private recordHistory(model: string, version: number | undefined, event: HistoryEvent, from: string | undefined, to: string | undefined, actor: string): void {
    this.db.prepare('INSERT INTO history (model, version, event, from_value, to_value, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(model, version ?? null, event, from ?? null, to ?? null, actor, now());
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
      throw new CaliperError('CALIPER_NOT_FOUND', `${request.configFile}: cannot read model.yaml (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    let staged;
    try {
      staged = await this.artifacts.stage(file);
    } catch (error) {
      throw new CaliperError('CALIPER_NOT_FOUND', `${request.file}: cannot read the model file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    try {
      const signature = await checkRegistration(staged.temporaryPath, request.file, configText, configFile, name);
      this.artifacts.commit(staged);
      const actor = request.actor ?? defaultActor();
      const version = this.write(() => {
        const at = now();
        this.db.prepare('INSERT INTO models (name, description, last_version, created_at, updated_at) VALUES (?, NULL, 0, ?, ?) ON CONFLICT(name) DO NOTHING').run(name, at, at);
        const next = (this.db.prepare('SELECT last_version FROM models WHERE name = ?').get(name) as { last_version: number }).last_version + 1;
        this.db.prepare('UPDATE models SET last_version = ?, updated_at = ? WHERE name = ?').run(next, at, name);
        this.db.prepare(`INSERT INTO versions (model, version, stage, source, sha256, size, signature, config, description, tags, metrics, created_at, created_by, stage_updated_at)
          VALUES (?, ?, 'None', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
          name, next, file, staged.sha256, staged.size, JSON.stringify(signature), configText, request.description ?? null,
          JSON.stringify(request.tags ?? {}), JSON.stringify(request.metrics ?? {}), at, actor, at);
        this.recordHistory(name, next, 'registered', undefined, `sha256:${staged.sha256}`, actor);
        return next;
      });
      return this.version(name, version);
    } finally {
      this.artifacts.discard(staged);
    }
  }

  private modelRow(name: string): ModelRow {
    const row = this.db.prepare('SELECT name, description, created_at, updated_at FROM models WHERE name = ?').get(name) as ModelRow | undefined;
    if (!row) {
      const known = (this.db.prepare('SELECT name FROM models ORDER BY name').all() as { name: string }[]).map((r) => r.name);
      throw new CaliperError('CALIPER_MODEL_NOT_FOUND', `model "${name}" is not registered (registered models: ${known.join(', ') || 'none'})`);
    }
    return row;
  }

  private aliasesOf(name: string): Record<string, number> {
    const rows = this.db.prepare('SELECT alias, version FROM aliases WHERE model = ? ORDER BY alias').all(name) as { alias: string; version: number }[];
    return Object.fromEntries(rows.map((r) => [r.alias, r.version]));
  }

  private toVersion(row: VersionRow, aliases: Record<string, number>): RegisteredVersion {
    const record: RegisteredVersion = {
      name: row.model, version: row.version, stage: row.stage,
      aliases: Object.entries(aliases).filter(([, v]) => v === row.version).map(([a]) => a),
      source: row.source, sha256: row.sha256, size: row.size, signature: JSON.parse(row.signature) as ModelSignature, config: row.config,
      tags: JSON.parse(row.tags) as Record<string, string>, metrics: JSON.parse(row.metrics) as Record<string, number>,
      createdAt: row.created_at, createdBy: row.created_by, stageUpdatedAt: row.stage_updated_at,
    };
    if (row.description !== null) record.description = row.description;
    return record;
  }

  listModels(): RegisteredModel[] {
    const rows = this.db.prepare('SELECT name FROM models ORDER BY name').all() as { name: string }[];
    return rows.map((r) => this.model(r.name));
  }

  model(name: string): RegisteredModel {
    const row = this.modelRow(name);
    const versions = this.db.prepare('SELECT version, stage FROM versions WHERE model = ? ORDER BY version').all(name) as { version: number; stage: Stage }[];
    const stages: Partial<Record<Stage, number[]>> = {};
    for (const v of versions) if (v.stage !== 'None') (stages[v.stage] ??= []).push(v.version);
    const model: RegisteredModel = {
      name, createdAt: row.created_at, updatedAt: row.updated_at, versions: versions.map((v) => v.version), stages, aliases: this.aliasesOf(name),
    };
    if (versions.length > 0) model.latestVersion = versions[versions.length - 1]!.version;
    if (row.description !== null) model.description = row.description;
    return model;
  }

  versions(name: string): RegisteredVersion[] {
    this.modelRow(name);
    const aliases = this.aliasesOf(name);
    return (this.db.prepare('SELECT * FROM versions WHERE model = ? ORDER BY version').all(name) as VersionRow[]).map((r) => this.toVersion(r, aliases));
  }

  version(name: string, version: number): RegisteredVersion {
    this.modelRow(name);
    const row = this.db.prepare('SELECT * FROM versions WHERE model = ? AND version = ?').get(name, version) as VersionRow | undefined;
    if (!row) {
      const known = (this.db.prepare('SELECT version FROM versions WHERE model = ? ORDER BY version').all(name) as { version: number }[]).map((r) => r.version);
      throw new CaliperError('CALIPER_VERSION_NOT_FOUND', `model "${name}" has no version ${version} (versions: ${known.join(', ') || 'none'})`);
    }
    return this.toVersion(row, this.aliasesOf(name));
  }

  /** The version a selector names now: a number, the highest version in a stage, an alias, or the highest version. */
  resolve(name: string, selector: VersionSelector): RegisteredVersion {
    const uri = formatModelUri({ name, selector });
    switch (selector.kind) {
      case 'version':
        return this.version(name, selector.version);
      case 'latest': {
        const model = this.model(name);
        if (model.latestVersion === undefined) throw new CaliperError('CALIPER_VERSION_NOT_FOUND', `${uri}: model "${name}" has no versions`);
        return this.version(name, model.latestVersion);
      }
      case 'stage': {
        const model = this.model(name);
        const inStage = model.stages[selector.stage];
        if (!inStage || inStage.length === 0) {
          const summary = Object.entries(model.stages).map(([s, vs]) => `${s}: ${vs.join(', ')}`).join('; ');
          throw new CaliperError('CALIPER_VERSION_NOT_FOUND', `${uri}: model "${name}" has no version in stage ${selector.stage} (${summary || 'every version is in stage None'})`);
        }
        return this.version(name, inStage[inStage.length - 1]!);
      }
      case 'alias': {
        const aliases = this.model(name).aliases;
        const version = aliases[selector.alias];
        if (version === undefined) {
          throw new CaliperError('CALIPER_NOT_FOUND', `${uri}: model "${name}" has no alias "${selector.alias}" (aliases: ${Object.keys(aliases).join(', ') || 'none'})`);
        }
        return this.version(name, version);
      }
    }
  }

  /** Moves a version to a stage; with archiveExisting the versions already in that stage go to Archived. */
  setStage(name: string, version: number, stage: Stage, options: { archiveExisting?: boolean; actor?: string } = {}): RegisteredVersion {
    const actor = options.actor ?? defaultActor();
    this.write(() => {
      const current = this.version(name, version);
      const at = now();
      if (options.archiveExisting && stage !== 'None' && stage !== 'Archived') {
        const others = this.db.prepare('SELECT version FROM versions WHERE model = ? AND stage = ? AND version != ?').all(name, stage, version) as { version: number }[];
        for (const other of others) {
          this.db.prepare("UPDATE versions SET stage = 'Archived', stage_updated_at = ? WHERE model = ? AND version = ?").run(at, name, other.version);
          this.recordHistory(name, other.version, 'stage', stage, 'Archived', actor);
        }
      }
      if (current.stage !== stage) {
        this.db.prepare('UPDATE versions SET stage = ?, stage_updated_at = ? WHERE model = ? AND version = ?').run(stage, at, name, version);
        this.recordHistory(name, version, 'stage', current.stage, stage, actor);
      }
      this.db.prepare('UPDATE models SET updated_at = ? WHERE name = ?').run(at, name);
    });
    return this.version(name, version);
  }

  /** Points an alias at a version (moving it if it pointed elsewhere). */
  setAlias(name: string, alias: string, version: number, actor = defaultActor()): RegisteredVersion {
    checkAlias(alias);
    this.write(() => {
      this.version(name, version);
      const previous = this.aliasesOf(name)[alias];
      if (previous === version) return;
      const at = now();
      this.db.prepare('INSERT INTO aliases (model, alias, version, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at')
        .run(name, alias, version, at);
      this.recordHistory(name, version, 'alias_set', previous === undefined ? undefined : `${alias}=${previous}`, `${alias}=${version}`, actor);
      this.db.prepare('UPDATE models SET updated_at = ? WHERE name = ?').run(at, name);
    });
    return this.version(name, version);
  }

  removeAlias(name: string, alias: string, actor = defaultActor()): void {
    this.write(() => {
      const previous = this.aliasesOf(name)[alias];
      if (previous === undefined) throw new CaliperError('CALIPER_NOT_FOUND', `model "${name}" has no alias "${alias}"`);
      this.db.prepare('DELETE FROM aliases WHERE model = ? AND alias = ?').run(name, alias);
      this.recordHistory(name, previous, 'alias_removed', `${alias}=${previous}`, undefined, actor);
    });
  }

  archive(name: string, version: number, actor = defaultActor()): RegisteredVersion {
    return this.setStage(name, version, 'Archived', { actor });
  }

  private refusesDelete(version: RegisteredVersion): string | undefined {
    if (version.stage === 'Production' || version.stage === 'Staging') return `it is in stage ${version.stage}`;
    if (version.aliases.length > 0) return `aliases point at it (${version.aliases.join(', ')})`;
    return undefined;
  }

  /** Deletes one version (its aliases go with it); a version in Staging/Production or under an alias needs force. */
  deleteVersion(name: string, version: number, options: { force?: boolean; actor?: string } = {}): void {
    const actor = options.actor ?? defaultActor();
    const sha = this.write(() => {
      const found = this.version(name, version);
      const why = this.refusesDelete(found);
      if (why && !options.force) throw new CaliperError('CALIPER_CONFLICT', `models:/${name}/${version}: not deleted because ${why}; archive it first or pass --force`);
      this.db.prepare('DELETE FROM aliases WHERE model = ? AND version = ?').run(name, version);
      this.db.prepare('DELETE FROM versions WHERE model = ? AND version = ?').run(name, version);
      this.recordHistory(name, version, 'version_deleted', found.stage, undefined, actor);
      return found.sha256;
    });
    this.dropUnreferenced([sha]);
  }

  deleteModel(name: string, options: { force?: boolean; actor?: string } = {}): void {
    const actor = options.actor ?? defaultActor();
    const shas = this.write(() => {
      const versions = this.versions(name);
      const held = versions.map((v) => [v, this.refusesDelete(v)] as const).find(([, why]) => why !== undefined);
      if (held && !options.force) throw new CaliperError('CALIPER_CONFLICT', `model "${name}": not deleted because version ${held[0].version}: ${held[1]}; pass --force`);
      this.db.prepare('DELETE FROM models WHERE name = ?').run(name);
      this.recordHistory(name, undefined, 'model_deleted', `versions ${versions.map((v) => v.version).join(',')}`, undefined, actor);
      return versions.map((v) => v.sha256);
    });
    this.dropUnreferenced(shas);
  }

  private dropUnreferenced(shas: string[]): void {
    for (const sha of new Set(shas)) {
      const used = this.db.prepare('SELECT 1 FROM versions WHERE sha256 = ? LIMIT 1').get(sha);
      if (!used) this.artifacts.remove(sha);
    }
  }

  history(name: string): HistoryEntry[] {
    const rows = this.db.prepare('SELECT * FROM history WHERE model = ? ORDER BY id').all(name) as HistoryRow[];
    if (rows.length === 0) this.modelRow(name);
    return rows.map((r) => {
      const entry: HistoryEntry = { id: r.id, model: r.model, event: r.event, actor: r.actor, at: r.at };
      if (r.version !== null) entry.version = r.version;
      if (r.from_value !== null) entry.from = r.from_value;
      if (r.to_value !== null) entry.to = r.to_value;
      return entry;
    });
  }

  traffic(name: string): TrafficSettings {
    const row = this.db.prepare('SELECT canary_target, canary_weight, shadow_target, shadow_fraction FROM traffic WHERE model = ?').get(name) as TrafficRow | undefined;
    const settings: TrafficSettings = {};
    if (row?.canary_target && row.canary_weight !== null) settings.canary = { target: parseSelector(name, row.canary_target), weight: row.canary_weight };
    if (row?.shadow_target && row.shadow_fraction !== null) settings.shadow = { target: parseSelector(name, row.shadow_target), fraction: row.shadow_fraction };
    return settings;
  }

  /** Replaces the model's traffic policy; an empty settings object ends canary and shadow. */
  setTraffic(name: string, settings: TrafficSettings, actor = defaultActor()): TrafficSettings {
    for (const [field, value] of [['canary.weight', settings.canary?.weight], ['shadow.fraction', settings.shadow?.fraction]] as const) {
      if (value !== undefined && (!Number.isFinite(value) || value < 0 || value > 1)) {
        throw new CaliperError('CALIPER_INVALID_INPUT', `${field}: expected a fraction from 0 to 1, got ${value}`);
      }
    }
    this.write(() => {
      this.modelRow(name);
      const before = describeTraffic(this.traffic(name));
      this.db.prepare(`INSERT INTO traffic (model, canary_target, canary_weight, shadow_target, shadow_fraction, updated_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(model) DO UPDATE SET canary_target = excluded.canary_target, canary_weight = excluded.canary_weight,
        shadow_target = excluded.shadow_target, shadow_fraction = excluded.shadow_fraction, updated_at = excluded.updated_at`).run(
        name, settings.canary ? formatSelector(settings.canary.target) : null, settings.canary?.weight ?? null,
        settings.shadow ? formatSelector(settings.shadow.target) : null, settings.shadow?.fraction ?? null, now());
      this.recordHistory(name, undefined, 'traffic', before, describeTraffic(settings), actor);
    });
    return this.traffic(name);
  }

  /** A version's model.yaml as a config, named as registered; `dir` is where relative paths would resolve. */
  configOf(version: RegisteredVersion): ModelConfig {
    const file = `${formatModelUri({ name: version.name, selector: { kind: 'version', version: version.version } })} (model.yaml)`;
    return configForName(version.config, file, dirname(this.artifacts.pathOf(version.sha256)), version.name);
  }

  /** The artifact's path once its sha256 has been checked again. */
  async artifactPath(version: RegisteredVersion): Promise<string> {
    return this.artifacts.verified(version.sha256, `models:/${version.name}/${version.version}`);
  }
}

export function describeTraffic(settings: TrafficSettings): string {
  const parts: string[] = [];
  if (settings.canary) parts.push(`canary ${formatSelector(settings.canary.target)} ${Math.round(settings.canary.weight * 1000) / 10}%`);
  if (settings.shadow) parts.push(`shadow ${formatSelector(settings.shadow.target)} ${Math.round(settings.shadow.fraction * 1000) / 10}%`);
  return parts.join(', ') || 'all traffic to the served version';
}
