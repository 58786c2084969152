/**
 * Triton's model configuration extension: a served version's model.yaml and ONNX signature in the field names
 * of Triton's ModelConfig message (model_config.proto), for GET /v2/models/{name}[/versions/{v}]/config (its JSON
 * form) and the gRPC ModelConfig RPC. Only what Caliper has an equivalent for is filled in; Caliper settings
 * Triton has no field for go in `parameters` as caliper_* strings.
 */
import { basename } from 'node:path';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { TensorSignature } from '../runtime/model-signature.ts';
import { ONNX_PLATFORM, v2DatatypeOf, type V2Datatype } from './datatypes.ts';

/** model_config.proto's DataType names for the v2 datatypes (BYTES is TYPE_STRING there). */
const DATA_TYPES: Record<V2Datatype, string> = {
  BOOL: 'TYPE_BOOL',
  UINT8: 'TYPE_UINT8',
  UINT16: 'TYPE_UINT16',
  UINT32: 'TYPE_UINT32',
  UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8',
  INT16: 'TYPE_INT16',
  INT32: 'TYPE_INT32',
  INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16',
  FP32: 'TYPE_FP32',
  FP64: 'TYPE_FP64',
  BYTES: 'TYPE_STRING',
};

export interface TritonModelInput {
  name: string;
  data_type: string;
  format: 'FORMAT_NONE';
  dims: number[];
  is_shape_tensor: boolean;
  allow_ragged_batch: boolean;
  optional: boolean;
}
export interface TritonModelOutput {
  name: string;
  data_type: string;
  dims: number[];
  label_filename: string;
  is_shape_tensor: boolean;
}
export interface TritonQueuePolicy {
  timeout_action: 'REJECT';
  default_timeout_microseconds: number;
  allow_timeout_override: boolean;
  max_queue_size: number;
}
export interface TritonDynamicBatching {
  preferred_batch_size: number[];
  max_queue_delay_microseconds: number;
  preserve_ordering: boolean;
  priority_levels: number;
  default_priority_level: number;
  default_queue_policy: TritonQueuePolicy;
}
export type TritonVersionPolicy =
  | { latest: { num_versions: number } }
  | { all: Record<string, never> }
  | { specific: { versions: number[] } };

export interface TritonModelConfig {
  name: string;
  platform: string;
  backend: string;
  version_policy: TritonVersionPolicy;
  max_batch_size: number;
  input: TritonModelInput[];
  output: TritonModelOutput[];
  dynamic_batching?: TritonDynamicBatching;
  instance_group: { name: string; kind: 'KIND_CPU'; count: number }[];
  default_model_filename: string;
  parameters: Record<string, { string_value: string }>;
  model_transaction_policy: { decoupled: boolean };
  response_cache: { enable: boolean };
}

/** With max_batch_size > 0 Triton's dims leave out the batch dimension; with 0 they are the whole shape. */
const dimsOf = (tensor: TensorSignature, batched: boolean): number[] =>
  batched ? tensor.shape.slice(1) : [...tensor.shape];

export function tritonModelConfig(version: ModelVersion): TritonModelConfig {
  const { config } = version;
  const { batching } = config;
  // The dynamic batcher runs only when model.yaml asks for it and the model's batch axis is proven.
  const batched = batching.enabled && version.batchable;
  const maxBatchSize = batched ? batching.maxBatchSize : 0;
  const policy = config.versionPolicy;
  const parameters: Record<string, { string_value: string }> = {
    caliper_instance_kind: { string_value: config.instances.kind },
    caliper_instance_kind_reason: { string_value: config.instances.kindReason },
    caliper_intra_op_threads: { string_value: String(config.instances.intraOpThreads) },
  };
  if (batched && batching.maxQueueDelayUs === 'auto') parameters.caliper_max_queue_delay_us = { string_value: 'auto' };
  const levels = batching.priorityLevels;
  return {
    name: config.name,
    platform: ONNX_PLATFORM,
    backend: 'onnxruntime',
    version_policy:
      policy.kind === 'latest'
        ? { latest: { num_versions: 1 } }
        : policy.kind === 'all'
          ? { all: {} }
          : { specific: { versions: [...policy.versions] } },
    max_batch_size: maxBatchSize,
    input: version.signature.inputs.map((t) => ({
      name: t.name,
      data_type: DATA_TYPES[v2DatatypeOf(t.type)],
      format: 'FORMAT_NONE',
      dims: dimsOf(t, batched),
      is_shape_tensor: false,
      allow_ragged_batch: false,
      optional: false,
    })),
    output: version.signature.outputs.map((t) => ({
      name: t.name,
      data_type: DATA_TYPES[v2DatatypeOf(t.type)],
      dims: dimsOf(t, batched),
      label_filename: '',
      is_shape_tensor: false,
    })),
    ...(batched
      ? {
          dynamic_batching: {
            preferred_batch_size: [...batching.preferredBatchSizes],
            max_queue_delay_microseconds: batching.maxQueueDelayUs === 'auto' ? 0 : batching.maxQueueDelayUs,
            preserve_ordering: false,
            // Triton counts levels from 1 (highest) and 0 means "no priorities"; Caliper's default level is its highest.
            priority_levels: levels > 1 ? levels : 0,
            default_priority_level: levels > 1 ? 1 : 0,
            default_queue_policy: {
              timeout_action: 'REJECT',
              default_timeout_microseconds: batching.timeoutMs * 1000,
              allow_timeout_override: true,
              max_queue_size: batching.maxQueueSize,
            },
          },
        }
      : {}),
    instance_group: [{ name: config.name, kind: 'KIND_CPU', count: config.instances.count }],
    default_model_filename: basename(version.modelPath),
    parameters,
    model_transaction_policy: { decoupled: false },
    response_cache: { enable: config.cache.enabled },
  };
}
