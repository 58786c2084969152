import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ModelConfig } from '../config/model-config.ts';
import {
  isModelFolder,
  listModelVersions,
  MODEL_FILE,
  readModelConfig,
  readVersionConfig,
} from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import { defaultScheduler } from '../scheduler/scheduler-factory.ts';
import { ModelVersion, type SchedulerFactory } from './model-version.ts';
import { choosesCanary, type TrafficPolicy } from './traffic-policy.ts';

/** A model as served: its config, its loaded versions and which one answers by default. */
export interface ServedModel {
  name: string;
  config: ModelConfig;
  versions: Map<number, ModelVersion>;
  /** The version that answers requests naming no version. */
  defaultVersion: number;
  /** Canary and shadow traffic, set by the registry follower. */
  traffic?: TrafficPolicy;
}

export interface ModelLoadFailure {
  name: string;
  source: string;
  version?: number;
  reason: string;
}

/** Model folders found under the given paths: each path is a model folder or a repository of model folders. */
export function discoverModelFolders(paths: readonly string[]): string[] {
  const folders: string[] = [];
  for (const path of paths) {
    const dir = resolve(path);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `${path}: not a directory (expected a model folder with model.yaml, or a repository of model folders)`,
      );
    }
    if (isModelFolder(dir)) {
      folders.push(dir);
      continue;
    }
    const children = readdirSync(dir)
      .map((entry) => join(dir, entry))
      .filter((child) => statSync(child).isDirectory() && isModelFolder(child));
    if (children.length === 0)
      throw new CaliperError('CALIPER_NOT_FOUND', `${path}: no model.yaml in it or in any of its folders`);
    folders.push(...children.sort());
  }
  return folders;
}

function versionsToLoad(config: ModelConfig, available: number[]): number[] {
  if (available.length === 0) {
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${config.dir}: no version folder with ${MODEL_FILE} (expected ${config.dir}/1/${MODEL_FILE})`,
    );
  }
  const policy = config.versionPolicy;
  if (policy.kind === 'latest') return [available[available.length - 1]!];
  if (policy.kind === 'all') return available;
  for (const v of policy.versions) {
    if (!available.includes(v))
      throw new CaliperError(
        'CALIPER_MODEL_LOAD_FAILED',
        `${config.file}: versions: version ${v} has no folder ${config.dir}/${v}/${MODEL_FILE}`,
      );
  }
  return policy.versions;
}

/** The model's name as its model.yaml says, or the folder's name when model.yaml cannot be read. */
function modelNameOf(folder: string): string {
  try {
    return readModelConfig(folder).name;
  } catch {
    return basename(folder);
  }
}

export interface RepositoryOptions {
  /**
   * Ready only when every model the server was asked to serve loaded (Triton's --strict-readiness, the default);
   * false: ready as soon as one model is.
   */
  strictReadiness?: boolean;
}

/** The models this server answers for, by name; the one place that says which versions are live. */
export class ModelRepository {
  private readonly models = new Map<string, ServedModel>();
  /** Models the server was asked to serve that are not served, with the reason; cleared when one loads later. */
  readonly failures: ModelLoadFailure[] = [];
  readonly strictReadiness: boolean;

  constructor(
    private readonly schedulerFactory: SchedulerFactory = defaultScheduler,
    options: RepositoryOptions = {},
  ) {
    this.strictReadiness = options.strictReadiness ?? true;
  }

  /**
   * Loads every model folder under `paths`; a model that fails is recorded in `failures`, the others still load. The
   * folders load concurrently (a worker-thread instance's ONNX Runtime loads on its own thread while this one creates
   * the in-thread sessions and reads feature files), and are added in folder order: of two folders naming the same
   * model, the later one fails as "already served", as one after the other would.
   */
  async loadPaths(paths: readonly string[]): Promise<void> {
    const folders = discoverModelFolders(paths);
    const loads = await Promise.allSettled(folders.map((folder) => this.loadModel(folder)));
    for (const [i, load] of loads.entries()) {
      const folder = folders[i]!;
      try {
        if (load.status === 'rejected') throw load.reason;
        await this.add(load.value, folder);
      } catch (error) {
        this.recordFailure({ name: modelNameOf(folder), source: folder, reason: (error as Error).message });
      }
    }
  }

  /** Notes that a model could not be loaded (replacing an older note for the same folder). */
  recordFailure(failure: ModelLoadFailure): void {
    this.forgetFailure(failure.name, failure.source);
    this.failures.push(failure);
  }

  private forgetFailure(name: string, source?: string): void {
    for (let i = this.failures.length - 1; i >= 0; i--) {
      const f = this.failures[i]!;
      if (f.name === name || (source !== undefined && f.source === source)) this.failures.splice(i, 1);
    }
  }

  /** Loads every version the folder's policy names; if one fails, those already loaded are unloaded and the error thrown. */
  private async loadVersions(
    folder: string,
    config: ModelConfig,
  ): Promise<{ versions: number[]; loaded: Map<number, ModelVersion> }> {
    const versions = versionsToLoad(config, listModelVersions(folder));
    // Concurrently, as the folders are; the first failure (in version order) is thrown once the others settled.
    const settled = await Promise.allSettled(
      versions.map(async (v) =>
        ModelVersion.load(readVersionConfig(config, v), v, join(folder, String(v), MODEL_FILE), this.schedulerFactory),
      ),
    );
    const loaded = new Map<number, ModelVersion>();
    for (const [i, s] of settled.entries()) if (s.status === 'fulfilled') loaded.set(versions[i]!, s.value);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all([...loaded.values()].map((m) => m.unload()));
      throw failed.reason;
    }
    return { versions, loaded };
  }

  /**
   * Loads the model folder again when its model is served (new or removed versions, an edited model.yaml): every
   * version to serve is loaded and warmed beside the running ones, the switch is one synchronous step, and the
   * previous versions (`replace`) are freed once their leases are released (in-flight requests answered), so no request fails. If anything fails to
   * load, the running versions keep serving and the error is thrown. A model not yet served is loaded.
   */
  async reloadFolder(folder: string): Promise<ServedModel> {
    const config = readModelConfig(folder);
    if (!this.models.has(config.name)) return this.loadFolder(folder);
    const { versions, loaded } = await this.loadVersions(folder, config);
    const traffic = this.models.get(config.name)?.traffic;
    const retired = this.replace(config.name, {
      versions: [...loaded.values()],
      defaultVersion: Math.max(...versions),
      ...(traffic ? { traffic } : {}),
    });
    this.forgetFailure(config.name, folder);
    await Promise.all(retired.map((v) => v.retire()));
    return this.get(config.name);
  }

  async loadFolder(folder: string): Promise<ServedModel> {
    const loaded = await this.loadModel(folder);
    await this.add(loaded, folder);
    return loaded.model;
  }

  /** Loads and warms the folder's versions, not yet served; `config` is the folder's model.yaml. */
  private async loadModel(folder: string): Promise<{ model: ServedModel; config: ModelConfig }> {
    const config = readModelConfig(folder);
    this.refuseServed(config);
    const { versions, loaded } = await this.loadVersions(folder, config);
    const defaultVersion = Math.max(...versions);
    return {
      model: { name: config.name, config: loaded.get(defaultVersion)!.config, versions: loaded, defaultVersion },
      config,
    };
  }

  private refuseServed(config: ModelConfig): void {
    if (this.models.has(config.name))
      throw new CaliperError('CALIPER_CONFLICT', `${config.file}: name: model "${config.name}" is already served`);
  }

  /** Serves a loaded model; if its name is served meanwhile, frees it and throws CALIPER_CONFLICT. */
  private async add({ model, config }: { model: ServedModel; config: ModelConfig }, folder: string): Promise<void> {
    try {
      this.refuseServed(config);
    } catch (error) {
      await Promise.all([...model.versions.values()].map((v) => v.unload()));
      throw error;
    }
    this.models.set(model.name, model);
    this.forgetFailure(model.name, folder);
  }

  /**
   * The swap, in one synchronous step (a request sees either the old set of versions or the new one): `name` is
   * served by exactly `change.versions` from now on, `change.defaultVersion` (one of them) answering requests that
   * name no version, with `change.traffic` (canary, shadow; none when absent). Returns the versions served before
   * and not kept, no longer routed to: the caller drains and closes them with `ModelVersion.retire()`.
   * Throws (and changes nothing) when the default version is not among `change.versions`.
   */
  replace(
    name: string,
    change: { versions: readonly ModelVersion[]; defaultVersion: number; traffic?: TrafficPolicy },
  ): ModelVersion[] {
    const primary = change.versions.find((v) => v.version === change.defaultVersion);
    if (!primary || change.versions.some((v) => v.name !== name))
      throw new Error(
        `replace(${name}): the default version ${change.defaultVersion} must be one of the model's new versions`,
      );
    const kept = new Set(change.versions);
    const previous = this.models.get(name);
    const retired = previous ? [...previous.versions.values()].filter((v) => !kept.has(v)) : [];
    const versions = new Map(change.versions.map((v) => [v.version, v]));
    if (!previous) {
      this.models.set(name, {
        name,
        config: primary.config,
        versions,
        defaultVersion: change.defaultVersion,
        ...(change.traffic ? { traffic: change.traffic } : {}),
      });
      return retired;
    }
    // The served model keeps its identity (whoever holds it sees the new versions), its fields set together.
    previous.versions = versions;
    previous.config = primary.config;
    previous.defaultVersion = change.defaultVersion;
    if (change.traffic) previous.traffic = change.traffic;
    else delete previous.traffic;
    return retired;
  }

  /** Serves `next` as the model's default version beside the others; the previous default drains, then is freed. */
  async swapIn(next: ModelVersion): Promise<void> {
    const existing = this.models.get(next.name);
    const previous = existing?.versions.get(existing.defaultVersion);
    const others = existing
      ? [...existing.versions.values()].filter((v) => v !== previous && v.version !== next.version)
      : [];
    const retired = this.replace(next.name, {
      versions: [...others, next],
      defaultVersion: next.version,
      ...(existing?.traffic ? { traffic: existing.traffic } : {}),
    });
    await Promise.all(retired.map((v) => v.retire()));
  }

  /** Stops routing to the model at once, then closes each version after its last in-flight request is answered. */
  async unloadModel(name: string): Promise<void> {
    const model = this.get(name);
    this.models.delete(name);
    await Promise.all([...model.versions.values()].map((v) => v.retire()));
  }

  list(): ServedModel[] {
    return [...this.models.values()];
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  get(name: string): ServedModel {
    const model = this.models.get(name);
    if (!model) {
      const known = [...this.models.keys()].join(', ') || 'none';
      throw new CaliperError('CALIPER_MODEL_NOT_FOUND', `model "${name}" is not served (served models: ${known})`);
    }
    return model;
  }

  /**
   * Whether a request body for model `name` has to be read with exact 64-bit integers: when any of its served versions
   * takes one (ModelVersion.takesInt64), and for a name not served (such a request is refused later; nothing is lost).
   */
  takesInt64(name: string): boolean {
    const model = this.models.get(name);
    if (!model) return true;
    for (const version of model.versions.values()) if (version.takesInt64) return true;
    return false;
  }

  /** The version that answers a request naming no version: the canary for its share of requests, else the default. */
  route(name: string, routingKey?: string): ModelVersion {
    const model = this.get(name);
    const canary = model.traffic?.canary;
    if (canary && canary.version.state === 'ready' && choosesCanary(canary, routingKey)) return canary.version;
    return model.versions.get(model.defaultVersion)!;
  }

  /** The version named (a decimal string from a URL), or the default one. */
  version(name: string, version?: string | number): ModelVersion {
    const model = this.get(name);
    if (version === undefined || version === '') return model.versions.get(model.defaultVersion)!;
    const number = typeof version === 'number' ? version : /^[0-9]+$/.test(version) ? Number(version) : NaN;
    const found = model.versions.get(number);
    if (!found) {
      throw new CaliperError(
        'CALIPER_VERSION_NOT_FOUND',
        `model "${name}" has no served version "${version}" (served versions: ${[...model.versions.keys()].join(', ')})`,
      );
    }
    return found;
  }

  /**
   * The version that answers an inference request, on every protocol: the one named (a decimal string from a URL or a
   * gRPC field), else the one the traffic policy routes to (`route`). Readiness is decided here, once: a version not
   * ready (loading, unloading) refuses with CALIPER_MODEL_NOT_READY (503 / UNAVAILABLE, Retry-After 1).
   */
  inferenceVersion(name: string, version?: string, routingKey?: string): ModelVersion {
    const chosen = version === undefined || version === '' ? this.route(name, routingKey) : this.version(name, version);
    if (chosen.state !== 'ready')
      throw new CaliperError(
        'CALIPER_MODEL_NOT_READY',
        `model "${chosen.name}" version ${chosen.version} is ${chosen.state}`,
        { retryAfterSeconds: 1 },
      );
    return chosen;
  }

  /** Models this server was asked to serve from elsewhere (the registry follower): which failed, which still load. */
  private readonly followedSources: (() => { failures: ModelLoadFailure[]; loading: number })[] = [];

  addFollowedSource(source: () => { failures: ModelLoadFailure[]; loading: number }): void {
    this.followedSources.push(source);
  }

  /** Every model that failed to load: folders, and models followed from a registry that serve nothing. */
  currentFailures(): ModelLoadFailure[] {
    return [...this.failures, ...this.followedSources.flatMap((source) => source().failures)];
  }

  /** Ready to take traffic: a model is served, every served version is ready and (strict) no model failed to load or is still loading. */
  get ready(): boolean {
    if (this.strictReadiness && this.currentFailures().length > 0) return false;
    if (this.followedSources.some((source) => source().loading > 0)) return false;
    return this.models.size > 0 && this.list().every((m) => [...m.versions.values()].every((v) => v.state === 'ready'));
  }

  async close(): Promise<void> {
    const all = this.list();
    this.models.clear();
    await Promise.all(all.flatMap((m) => [...m.versions.values()].map((v) => v.unload())));
  }
}
