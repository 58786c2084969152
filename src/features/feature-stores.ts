import { MODEL_FOLDER_PATHS, resolveModelFolderPath } from '../config/model-folder-path.ts';
import { CaliperError } from '../errors.ts';
import type { FeaturesSpec } from './feature-config.ts';
import type { FeatureStore } from './feature-store.ts';

/**
 * Opens the store model.yaml's `features` section names; `dir` is the model folder a memory source is relative to.
 * Each store's module (ioredis, DuckDB) is imported here, when a model names that store, not at start-up.
 */
export async function openFeatureStore(spec: FeaturesSpec, dir: string, configFile: string): Promise<FeatureStore> {
  if (spec.store.kind === 'redis') {
    const { RedisFeatureStore } = await import('./redis-feature-store.ts');
    return RedisFeatureStore.connect(spec.store.url, spec.fields);
  }
  const path = resolveModelFolderPath(dir, spec.store.source, MODEL_FOLDER_PATHS.featuresSource, configFile);
  try {
    const { MemoryFeatureStore } = await import('./memory-feature-store.ts');
    return await MemoryFeatureStore.fromFile(path, spec.key, spec.fields);
  } catch (error) {
    throw new CaliperError('CALIPER_MODEL_LOAD_FAILED', `${configFile}: features.source: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
