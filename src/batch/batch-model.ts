import { join } from 'node:path';
import { listModelVersions, MODEL_FILE, readModelConfig, readVersionConfig } from '../config/model-config-file.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { ModelVersion } from '../lifecycle/model-version.ts';
import { isModelUri } from '../registry/model-uri.ts';

export interface BatchModelOptions {
  /** Model instances (each on its own worker thread); default: model.yaml's instances. */
  instances?: number;
  /** ONNX Runtime intra-op threads per instance. */
  threads?: number;
  /** Registry home for models:/ URIs (default $CALIPER_HOME or ~/.caliper). */
  registry?: string;
}

/**
 * The model's settings for files: the instance count and threads asked for, no dynamic batching and no response
 * cache. A file's rows already come in batches of --batch-size; the online batcher would cut each into
 * max_batch_size runs (64 rows for the fraud example), each queued, sliced and concatenated again; and a file's
 * chunks are scored once, so an answer cache would only hold copies of them.
 */
function withInstances(base: ModelConfig, options: BatchModelOptions): ModelConfig {
  const instances = { ...base.instances };
  if (options.instances !== undefined) {
    instances.count = options.instances;
    instances.kind = 'worker';
    instances.kindReason = 'caliper batch --instances: one worker thread per instance';
  }
  if (options.threads !== undefined) instances.intraOpThreads = options.threads;
  return {
    ...base,
    instances,
    batching: { ...base.batching, enabled: false },
    cache: { ...base.cache, enabled: false },
  };
}

function pickVersion(config: ModelConfig, available: number[]): number {
  if (available.length === 0)
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${config.dir}: no version folder with ${MODEL_FILE} (expected ${config.dir}/1/${MODEL_FILE})`,
    );
  const policy = config.versionPolicy;
  if (policy.kind === 'specific') return Math.max(...policy.versions.filter((v) => available.includes(v)), -1);
  return available[available.length - 1]!;
}

/**
 * Loads a registry URI's version (models:/name/Production, models:/name/3, models:/name@alias) or the version a
 * model folder serves by default, with the instance settings given for large batches.
 */
export async function loadBatchModel(model: string, options: BatchModelOptions = {}): Promise<ModelVersion> {
  if (isModelUri(model)) {
    // The registry (SQLite, Postgres or S3 clients) loads only for a models:/ URI.
    const { resolveModelUri } = await import('../registry/uri-resolver.ts');
    const resolved = await resolveModelUri(model, options.registry);
    return ModelVersion.load(withInstances(resolved.config, options), resolved.version, resolved.modelPath);
  }
  const folder = readModelConfig(model);
  const version = pickVersion(folder, listModelVersions(folder.dir));
  if (version < 1)
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${folder.file}: versions: none of the listed versions has a folder with ${MODEL_FILE}`,
    );
  const config = withInstances(readVersionConfig(folder, version), options);
  return ModelVersion.load(config, version, join(folder.dir, String(version), MODEL_FILE));
}
