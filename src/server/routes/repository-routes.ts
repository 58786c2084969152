import type { FastifyInstance } from 'fastify';
import { describeValue } from '../../config/config-reader.ts';
import { readModelConfig } from '../../config/model-config-file.ts';
import { CaliperError, invalidInput } from '../../errors.ts';
import { discoverModelFolders, type ModelRepository } from '../../lifecycle/model-repository.ts';
import type { FollowStatus, RegistryFollower } from '../../lifecycle/registry-follower.ts';
import type { TrafficSettings } from '../../registry/model-registry.ts';
import { checkAlias, parseStage } from '../../registry/model-stage.ts';
import { formatSelector, parseSelector } from '../../registry/model-uri.ts';
import { actorOf } from '../auth.ts';

export interface RepositoryRouteOptions {
  repository: ModelRepository;
  /** Present when the server follows a registry. */
  follower?: RegistryFollower;
  /** The folders the server was started with, for loading models that are not in a registry. */
  paths: readonly string[];
}

interface IndexEntry {
  name: string;
  version?: string;
  state: 'READY' | 'LOADING' | 'UNAVAILABLE' | 'UNLOADING';
  reason?: string;
}

const objectBody = (body: unknown): Record<string, unknown> => {
  if (body === undefined || body === null || body === '') return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw invalidInput(`body: expected a JSON object, got ${describeValue(body)}`);
  return body as Record<string, unknown>;
};

function optionalString(o: Record<string, unknown>, field: string): string | undefined {
  const value = o[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '')
    throw invalidInput(`${field}: expected a non-empty string, got ${describeValue(value)}`);
  return value;
}

function share(o: Record<string, unknown>, field: string, path: string): number {
  const value = o[field];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1)
    throw invalidInput(`${path}.${field}: expected a fraction from 0 to 1, got ${describeValue(value)}`);
  return value;
}

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

/**
 * Triton's model repository extension (index, load, unload), plus promote and traffic for a registry.
 * Admin-only: each route declares `protection: 'admin'`, checked on the matched route (src/server/auth.ts).
 */
/** Model control: the admin token only; these routes are registered only when the server has one. */
const ADMIN = { config: { protection: 'admin' } } as const;

export function registerRepositoryRoutes(app: FastifyInstance, options: RepositoryRouteOptions): void {
  const { repository, follower } = options;
  const needsRegistry = (): RegistryFollower => {
    if (!follower)
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        'this server does not follow a model registry (start it with models:/ URIs or --registry DIR)',
      );
    return follower;
  };

  app.post('/v2/repository/index', ADMIN, async (request) => {
    const body = objectBody(request.body);
    const readyOnly = body.ready === true;
    const entries: IndexEntry[] = [];
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
  });

  app.get<{ Params: { name: string } }>('/v2/repository/models/:name/status', ADMIN, async (request) => {
    const { name } = request.params;
    const status = follower?.statusOf(name);
    if (!status && !repository.has(name)) repository.get(name);
    const model = repository.has(name) ? repository.get(name) : undefined;
    return {
      name,
      served_versions: model ? [...model.versions.keys()].sort((a, b) => a - b) : [],
      default_version: model?.defaultVersion,
      ...(statusJson(status) ? { registry: statusJson(status) } : {}),
      ...(model?.traffic?.shadow ? { shadow_stats: model.traffic.shadow.stats } : {}),
    };
  });

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/load', ADMIN, async (request) => {
    const { name } = request.params;
    const parameters = objectBody(objectBody(request.body).parameters);
    const target = optionalString(parameters, 'target');
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
      return {
        name,
        loaded: true,
        version: repository.get(name).defaultVersion,
        ...(statusJson(status) ? { registry: statusJson(status) } : {}),
      };
    }
    if (target !== undefined)
      throw invalidInput(`parameters.target: only models from a registry take a target; "${name}" is not registered`);
    const folder =
      options.paths.length === 0
        ? undefined
        : discoverModelFolders(options.paths).find((dir) => nameOfFolder(dir) === name);
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
  });

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/unload', ADMIN, async (request) => {
    const { name } = request.params;
    if (follower?.follows(name)) await follower.unfollow(name);
    else await repository.unloadModel(name);
    return { name, unloaded: true };
  });

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/promote', ADMIN, async (request) => {
    const registryFollower = needsRegistry();
    const { name } = request.params;
    const body = objectBody(request.body);
    const version = body.version;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
      throw invalidInput(`version: expected a version number from 1, got ${describeValue(version)}`);
    const stage = optionalString(body, 'stage');
    const alias = optionalString(body, 'alias');
    if ((stage === undefined) === (alias === undefined))
      throw invalidInput('body: expected exactly one of "stage" or "alias"');
    const archiveExisting = body.archive_existing === undefined ? false : body.archive_existing;
    if (typeof archiveExisting !== 'boolean')
      throw invalidInput(`archive_existing: expected true or false, got ${describeValue(archiveExisting)}`);
    const registry = registryFollower.registry;
    const actor = actorOf(request);
    const record =
      stage !== undefined
        ? await registry.setStage(name, version, parseStage(stage), { archiveExisting, actor })
        : await registry.setAlias(name, checkAlias(alias!), version, actor);
    await registryFollower.sync();
    const served = repository.has(name) ? repository.get(name) : undefined;
    return {
      name,
      version: record.version,
      stage: record.stage,
      aliases: record.aliases,
      served_version: served?.defaultVersion,
      ...(statusJson(registryFollower.statusOf(name)) ? { registry: statusJson(registryFollower.statusOf(name)) } : {}),
    };
  });

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/traffic', ADMIN, async (request) => {
    const registryFollower = needsRegistry();
    const { name } = request.params;
    const body = objectBody(request.body);
    const settings: TrafficSettings = {};
    if (body.canary !== undefined && body.canary !== null) {
      const canary = objectBody(body.canary);
      settings.canary = {
        target: parseSelector(name, optionalString(canary, 'target') ?? invalidTarget('canary')),
        weight: share(canary, 'weight', 'canary'),
      };
    }
    if (body.shadow !== undefined && body.shadow !== null) {
      const shadow = objectBody(body.shadow);
      settings.shadow = {
        target: parseSelector(name, optionalString(shadow, 'target') ?? invalidTarget('shadow')),
        fraction: share(shadow, 'fraction', 'shadow'),
      };
    }
    const saved = await registryFollower.registry.setTraffic(name, settings, actorOf(request));
    await registryFollower.sync();
    return {
      name,
      ...(saved.canary ? { canary: { target: formatSelector(saved.canary.target), weight: saved.canary.weight } } : {}),
      ...(saved.shadow
        ? { shadow: { target: formatSelector(saved.shadow.target), fraction: saved.shadow.fraction } }
        : {}),
      ...(statusJson(registryFollower.statusOf(name)) ? { registry: statusJson(registryFollower.statusOf(name)) } : {}),
    };
  });
}

function invalidTarget(field: string): never {
  throw invalidInput(`${field}.target: expected a version, stage, @alias or "latest"`);
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
