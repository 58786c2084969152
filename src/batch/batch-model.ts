import { join } from 'node:path';
import { listModelVersions, MODEL_FILE, readModelConfig, readVersionConfig } from '../config/model-config-file.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { ModelVersion } from '../lifecycle/model-version.ts';

export interface BatchModelOptions {
  /** Model instances (each on its own worker thread); default: model.yaml's instances. */
  instances?: number;
  /** ONNX Runtime intra-op threads per instance. */
  threads?: number;
}

function pickVersion(config: ModelConfig, available: number[]): number {
  if (available.length === 0) throw new CaliperError('CALIPER_MODEL_LOAD_FAILED', `${config.dir}: no version folder with ${MODEL_FILE} (expected ${config.dir}/1/${MODEL_FILE})`);
  const policy = config.versionPolicy;
  if (policy.kind === 'specific') return Math.max(...policy.versions.filter((v) => available.includes(v)), -1);
  return available[available.length - 1]!;
}

/** Loads the version a model folder serves by default, with instance settings suited to large batches. */
export async function loadBatchModel(model: string, options: BatchModelOptions = {}): Promise<ModelVersion> {
  if (/^models:\//.test(model)) {
    throw new CaliperError('CALIPER_NOT_FOUND', `--model: ${model}: registry URIs need the model registry (src/registry), which this build does not have yet; pass a model folder`);
  }
  const folder = readModelConfig(model);
  const version = pickVersion(folder, listModelVersions(folder.dir));
  if (version < 1) throw new CaliperError('CALIPER_MODEL_LOAD_FAILED', `${folder.file}: versions: none of the listed versions has a folder with ${MODEL_FILE}`);
  const base = readVersionConfig(folder, version);
  const instances = { ...base.instances };
  if (options.instances !== undefined) {
    instances.count = options.instances;
    instances.kind = 'worker';
  }
  if (options.threads !== undefined) instances.intraOpThreads = options.threads;
  const config: ModelConfig = { ...base, instances };
  return ModelVersion.load(config, version, join(base.dir, String(version), MODEL_FILE));
}
