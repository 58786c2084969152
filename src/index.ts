/**
 * The `caliper` package's library API: serve models from code, read model.yaml, score with the same pipeline,
 * and the model-optimization tools (quantize, distill, ONNX IO, data sets). The clients are `caliper/client`.
 */
export { startServing, type ServeOptions, type RunningServer } from './server/serving.ts';
export { ModelRepository, type ServedModel } from './lifecycle/model-repository.ts';
export { ModelVersion } from './lifecycle/model-version.ts';
export { readModelConfig, parseModelConfigText } from './config/model-config-file.ts';
export type { ModelConfig } from './config/model-config.ts';
export { runPredict, type PredictOptions, type PredictOutcome } from './pipeline/predict-pipeline.ts';
export { resolveModelUri, type ResolvedModel } from './registry/uri-resolver.ts';
export { ModelRegistry } from './registry/model-registry.ts';
export { CaliperError, type CaliperErrorCode } from './errors.ts';
export * from './optimize/index.ts';
