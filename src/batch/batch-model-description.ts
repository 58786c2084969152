/*
 * A batch job's model as model.yaml and the ONNX file describe it, without ONNX Runtime: where a model folder or
 * registry URI points, with the batch settings, and the declared signature the --queue submitter plans with.
 * (batch-model.ts loads it for scoring.)
 */
import { join } from 'node:path';
import { listModelVersions, MODEL_FILE, readModelConfig, readVersionConfig } from '../config/model-config-file.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { isModelUri } from '../registry/model-uri.ts';
import { featureInputs } from '../features/feature-config.ts';
import { Preprocessor } from '../pipeline/preprocess.ts';
import { checkConfigAgainstSignature } from '../pipeline/signature-check.ts';
import type { ValueInfoProto } from '../optimize/onnx/onnx-types.ts';
import type { TensorSignature } from '../runtime/model-signature.ts';
import type { ElementType } from '../runtime/tensor.ts';

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

/** Where a model folder or registry URI points: its model.yaml (with the batch settings), version and ONNX file. */
export async function resolveBatchModel(
  model: string,
  options: BatchModelOptions,
): Promise<{ config: ModelConfig; version: number; modelPath: string }> {
  if (isModelUri(model)) {
    // The registry (SQLite, Postgres or S3 clients) loads only for a models:/ URI.
    const { resolveModelUri } = await import('../registry/uri-resolver.ts');
    const resolved = await resolveModelUri(model, options.registry);
    return {
      config: withInstances(resolved.config, options),
      version: resolved.version,
      modelPath: resolved.modelPath,
    };
  }
  const folder = readModelConfig(model);
  const version = pickVersion(folder, listModelVersions(folder.dir));
  if (version < 1)
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${folder.file}: versions: none of the listed versions has a folder with ${MODEL_FILE}`,
    );
  const config = withInstances(readVersionConfig(folder, version), options);
  return { config, version, modelPath: join(folder.dir, String(version), MODEL_FILE) };
}

/** What planning a job needs of its model: name, version, model.yaml and the ONNX file's inputs and outputs. */
export type BatchModelDescription = Pick<ModelVersion, 'name' | 'version' | 'config' | 'signature'>;

/** The declared inputs (initializers excluded) or outputs of an ONNX graph, as ONNX Runtime would report them. */
function declaredTensors(
  values: readonly ValueInfoProto[],
  exclude: ReadonlySet<string>,
  typeNames: Readonly<Record<number, string>>,
): TensorSignature[] {
  return values.flatMap((value): TensorSignature[] => {
    const name = value.name ?? '';
    const tensor = value.type?.tensorType;
    if (exclude.has(name) || !tensor) return [];
    const type = typeNames[tensor.elemType ?? 0] as ElementType | undefined;
    if (type === undefined) throw new Error(`${name}: unsupported ONNX element type ${tensor.elemType}`);
    const dims = tensor.shape?.dim ?? [];
    return [
      {
        name,
        type,
        shape: dims.map((d) => (d.dimValue !== undefined && d.dimValue !== null ? Number(d.dimValue) : -1)),
        dimNames: dims.map((d) => (d.dimParam ? d.dimParam : undefined)),
      },
    ];
  });
}

/**
 * The model as a job is planned with, without loading ONNX Runtime: model.yaml, and the inputs and outputs the ONNX
 * file declares (read from its graph, weights in external files left unread), checked against each other as a load
 * checks them. For the `--queue` submitter, which scores nothing: the workers load the model. Throws
 * CALIPER_MODEL_LOAD_FAILED where no version has a model file or model.yaml does not fit the model, and
 * CALIPER_ONNX_INVALID where the file is no ONNX model.
 */
export async function describeBatchModel(
  model: string,
  options: BatchModelOptions = {},
): Promise<BatchModelDescription> {
  const { config, version, modelPath } = await resolveBatchModel(model, options);
  // The ONNX schema (protobufjs) loads only here: a local job never needs it.
  const [{ readModelFile }, { ORT_TYPE_BY_DATA_TYPE }] = await Promise.all([
    import('../optimize/onnx/model-io.ts'),
    import('../optimize/onnx/tensor-values.ts'),
  ]);
  const graph = readModelFile(modelPath, { loadExternalData: false }).graph ?? {};
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const signature = {
    inputs: declaredTensors(graph.input ?? [], initializers, ORT_TYPE_BY_DATA_TYPE),
    outputs: declaredTensors(graph.output ?? [], new Set(), ORT_TYPE_BY_DATA_TYPE),
  };
  // model.yaml against the declared inputs and outputs, as a load checks it: a mismatch fails here, not in every shard.
  const preprocessor = new Preprocessor({ ...config, inputs: [...config.inputs, ...featureInputs(config.features)] });
  checkConfigAgainstSignature(config, signature, preprocessor, modelPath);
  return { name: config.name, version, config, signature };
}
