import { ModelVersion } from '../lifecycle/model-version.ts';
import { resolveBatchModel, type BatchModelOptions } from './batch-model-description.ts';

/**
 * Loads a registry URI's version (models:/name/Production, models:/name/3, models:/name@alias) or the version a
 * model folder serves by default, with the instance settings given for large batches.
 */
export async function loadBatchModel(model: string, options: BatchModelOptions = {}): Promise<ModelVersion> {
  const { config, version, modelPath } = await resolveBatchModel(model, options);
  return ModelVersion.load(config, version, modelPath);
}
