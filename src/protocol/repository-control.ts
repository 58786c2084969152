import { readModelConfig } from '../config/model-config-file.ts';
import { CaliperError, invalidInput } from '../errors.ts';
import { discoverModelFolders, type ModelRepository } from '../lifecycle/model-repository.ts';
import type { FollowStatus, RegistryFollower } from '../lifecycle/registry-follower.ts';
import type { RegisteredVersion, TrafficSettings } from '../registry/model-registry.ts';
import type { Stage } from '../registry/model-stage.ts';
import { formatSelector, parseSelector } from '../registry/model-uri.ts';

/**
 * Triton's model repository extension (index, load, unload) plus Caliper's registry controls (status, promote,
 * traffic), protocol-neutral: the REST routes (/v2/repository/…) and the gRPC RPCs (RepositoryIndex,
 * RepositoryModelLoad, RepositoryModelUnload) both call these methods with arguments already parsed and the caller
 * already authorized (admin). Failures are CaliperErrors from the catalogue (src/errors.ts), which each protocol maps
 * once to its own status.
 */

/** One row of the repository index, in Triton's field names and states. */
export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state: 'READY' | 'LOADING' | 'UNAVAILABLE' | 'UNLOADING';
  reason?: string;
}

/** What the control reaches: the served versions, the registry follower (when the server follows one), the served folders. */
export interface RepositoryControlOptions {
  repository: ModelRepository;
  /** Present when the server follows a registry. */
  follower?: RegistryFollower;
  /** The folders the server was started with, for loading models that are not in a registry. */
  paths: readonly string[];
}

/** A follower's status in the REST answers' field names. */
function statusJson(status: FollowStatus | undefined): Record<string, unknown> | undefined {
  if (!status) return undefined;
  return {
    target: status.target,
    state: status.state,
    served_version: status.servedVersion,
    reason: status.reason,
    canary: status.canary,
    shadow: status.shadow,
    swaps: status.swaps,
    load_failures: status.loadFailures,
  };
}

const registryField = (status: FollowStatus | undefined): { registry?: Record<string, unknown> } => {
  const json = statusJson(status);
  return json ? { registry: json } : {};
};

export class RepositoryControl {
  constructor(private readonly options: RepositoryControlOptions) {}

  private get repository(): ModelRepository {
    return this.options.repository;
  }

  /** The registry follower; CALIPER_NOT_FOUND when the server follows no registry (promote and traffic need one). */
  requireRegistry(): RegistryFollower {
    const { follower } = this.options;
    if (!follower)
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        'this server does not follow a model registry (start it with models:/ URIs or --registry DIR)',
      );
    return follower;
  }

  /**
   * Every model the server knows: each served version with its state; followed, registered and failed models
   * that serve nothing as UNAVAILABLE (or LOADING) with the reason. `readyOnly` keeps the READY rows.
   */
  async index(readyOnly: boolean): Promise<RepositoryIndexEntry[]> {
    const { repository } = this;
    const { follower } = this.options;
    const entries: RepositoryIndexEntry[] = [];
    const seen = new Set<string>();
    for (const model of repository.list()) {
      seen.add(model.name);
      const reason = follower?.statusOf(model.name)?.reason;
      for (const v of [...model.versions.values()].sort((a, b) => a.version - b.version)) {
        const state =
          v.state === 'ready'
            ? 'READY'
            : v.state === 'loading'
              ? 'LOADING'
              : v.state === 'unloading'
                ? 'UNLOADING'
                : 'UNAVAILABLE';
        entries.push({
          name: model.name,
          version: String(v.version),
          state,
          ...(reason && v.version === model.defaultVersion ? { reason } : {}),
        });
      }
    }
    for (const status of follower?.status() ?? []) {
      if (seen.has(status.name)) continue;
      seen.add(status.name);
      entries.push({
        name: status.name,
        state: status.state === 'loading' ? 'LOADING' : 'UNAVAILABLE',
        ...(status.reason ? { reason: status.reason } : {}),
      });
    }
    for (const model of (await follower?.registry.listModels()) ?? []) {
      if (!seen.has(model.name))
        entries.push({ name: model.name, state: 'UNAVAILABLE', reason: 'registered, not loaded' });
    }
    for (const failure of repository.failures) {
      if (!seen.has(failure.name)) entries.push({ name: failure.name, state: 'UNAVAILABLE', reason: failure.reason });
    }
    return readyOnly ? entries.filter((e) => e.state === 'READY') : entries;
  }

  /** A model's served versions, default version, registry status and shadow statistics. CALIPER_MODEL_NOT_FOUND when unknown. */
  status(name: string): Record<string, unknown> {
    const { repository } = this;
    const status = this.options.follower?.statusOf(name);
    if (!status && !repository.has(name)) repository.get(name);
    const model = repository.has(name) ? repository.get(name) : undefined;
    return {
      name,
      served_versions: model ? [...model.versions.keys()].sort((a, b) => a - b) : [],
      default_version: model?.defaultVersion,
      ...registryField(status),
      ...(model?.traffic?.shadow ? { shadow_stats: model.traffic.shadow.stats } : {}),
    };
  }

  /**
   * Loads (or, as Triton's repository extension does, reloads) a model: from the registry when it is registered
   * (`target`: a version, stage, @alias or "latest"; default the follower's choice), else from the served folders.
   * Throws CALIPER_MODEL_LOAD_FAILED when the version was found and failed to load, CALIPER_INVALID_INPUT when the
   * target names nothing servable, CALIPER_MODEL_NOT_FOUND when neither the registry nor the folders hold the model.
   */
  async load(name: string, target?: string): Promise<Record<string, unknown>> {
    const { repository } = this;
    const { follower, paths } = this.options;
    if (follower && (follower.follows(name) || (await registered(follower, name)))) {
      const status = await follower.follow(name, target === undefined ? undefined : parseSelector(name, target));
      if (!repository.has(name) || status?.state === 'failed' || status?.state === 'unavailable') {
        // Nothing the target names can be served (no such alias, no Production version): the request is invalid.
        // A version that was found and failed to load is CALIPER_MODEL_LOAD_FAILED.
        throw new CaliperError(
          status?.state === 'failed' ? 'CALIPER_MODEL_LOAD_FAILED' : 'CALIPER_INVALID_INPUT',
          `model "${name}" could not be loaded: ${status?.reason ?? 'unknown reason'}`,
        );
      }
      return { name, loaded: true, version: repository.get(name).defaultVersion, ...registryField(status) };
    }
    if (target !== undefined)
      throw invalidInput(`parameters.target: only models from a registry take a target; "${name}" is not registered`);
    const folder =
      paths.length === 0 ? undefined : discoverModelFolders(paths).find((dir) => nameOfFolder(dir) === name);
    if (!folder)
      throw new CaliperError(
        'CALIPER_MODEL_NOT_FOUND',
        `model "${name}" is in neither the registry nor the served folders`,
      );
    // As Triton's repository extension: load on a served model reloads it (new versions, an edited model.yaml).
    const reloaded = repository.has(name);
    let model;
    try {
      model = await repository.reloadFolder(folder);
    } catch (error) {
      if (!reloaded) repository.recordFailure({ name, source: folder, reason: (error as Error).message });
      throw error;
    }
    return {
      name,
      loaded: true,
      reloaded,
      version: model.defaultVersion,
      versions: [...model.versions.keys()].sort((a, b) => a - b),
    };
  }

  /** Stops serving a model (and stops following it in the registry). CALIPER_MODEL_NOT_FOUND when it is not served. */
  async unload(name: string): Promise<{ name: string; unloaded: true }> {
    const { follower } = this.options;
    if (follower?.follows(name)) await follower.unfollow(name);
    else await this.repository.unloadModel(name);
    return { name, unloaded: true };
  }

  /**
   * Moves a registered version to a stage or an alias (exactly one of them) and lets the server follow at once.
   * `actor` is written to the registry's history. CALIPER_NOT_FOUND when the server follows no registry.
   */
  async promote(
    name: string,
    change: { version: number; stage?: Stage; alias?: string; archiveExisting: boolean },
    actor: string,
  ): Promise<Record<string, unknown>> {
    const follower = this.requireRegistry();
    const { registry } = follower;
    const record: RegisteredVersion =
      change.stage !== undefined
        ? await registry.setStage(name, change.version, change.stage, {
            archiveExisting: change.archiveExisting,
            actor,
          })
        : await registry.setAlias(name, change.alias!, change.version, actor);
    await follower.sync();
    const served = this.repository.has(name) ? this.repository.get(name) : undefined;
    return {
      name,
      version: record.version,
      stage: record.stage,
      aliases: record.aliases,
      served_version: served?.defaultVersion,
      ...registryField(follower.statusOf(name)),
    };
  }

  /** Sets a model's canary and shadow traffic in the registry and lets the server follow at once. */
  async traffic(name: string, settings: TrafficSettings, actor: string): Promise<Record<string, unknown>> {
    const follower = this.requireRegistry();
    const saved = await follower.registry.setTraffic(name, settings, actor);
    await follower.sync();
    return {
      name,
      ...(saved.canary ? { canary: { target: formatSelector(saved.canary.target), weight: saved.canary.weight } } : {}),
      ...(saved.shadow
        ? { shadow: { target: formatSelector(saved.shadow.target), fraction: saved.shadow.fraction } }
        : {}),
      ...registryField(follower.statusOf(name)),
    };
  }
}

async function registered(follower: RegistryFollower, name: string): Promise<boolean> {
  try {
    await follower.registry.model(name);
    return true;
  } catch {
    return false;
  }
}

/** The model name a folder's model.yaml declares, or the folder's name when model.yaml cannot be read. */
function nameOfFolder(dir: string): string {
  try {
    return readModelConfig(dir).name;
  } catch {
    return dir.split('/').pop() ?? dir;
  }
}
