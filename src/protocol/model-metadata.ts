import type { ModelRepository } from '../lifecycle/model-repository.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { TensorSignature } from '../runtime/model-signature.ts';
import { ONNX_PLATFORM, v2DatatypeOf } from './datatypes.ts';

/**
 * Server and model metadata of the Open Inference Protocol (GET /v2, GET /v2/models/NAME; gRPC ServerMetadata,
 * ModelMetadata): one answer shape, which the REST routes and the gRPC handlers both send.
 */

export const SERVER_NAME = 'caliper';
export const SERVER_VERSION = '0.1.0';
/** Protocol extensions this server implements (listed by GET /v2 and ServerMetadata). */
export const SERVER_EXTENSIONS: string[] = [
  'model_repository',
  'model_configuration',
  'statistics',
  'binary_tensor_data',
];

/** One tensor as the protocol's metadata lists it: name, v2 datatype (FP32, INT64, …), shape (-1 for a free axis). */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

const tensorMetadata = (t: TensorSignature): TensorMetadata => ({
  name: t.name,
  datatype: v2DatatypeOf(t.type),
  shape: t.shape,
});

/** Caliper's additions to the metadata: whether requests share runs (and why not), and the outputs that are not tensors. */
export function batchingMetadata(version: ModelVersion): {
  batchable: boolean;
  batchable_reason?: string;
  outputs_not_served?: { name: string; type: string }[];
} {
  const unserved = version.signature.unserved;
  return {
    ...(version.batchAxis.batchable
      ? { batchable: true }
      : { batchable: false, batchable_reason: version.batchAxis.reason }),
    ...(unserved && unserved.length > 0
      ? { outputs_not_served: unserved.map((o) => ({ name: o.name, type: o.type })) }
      : {}),
  };
}

/**
 * A served version's metadata: name, the versions served (ascending, as strings), platform, input and output
 * tensors, and the batching fields of `batchingMetadata`. Throws CALIPER_MODEL_NOT_FOUND when the model is no
 * longer in `repository`.
 */
export function modelMetadata(repository: ModelRepository, version: ModelVersion) {
  const model = repository.get(version.name);
  return {
    name: version.name,
    versions: [...model.versions.keys()].sort((a, b) => a - b).map(String),
    platform: ONNX_PLATFORM,
    inputs: version.signature.inputs.map(tensorMetadata),
    outputs: version.signature.outputs.map(tensorMetadata),
    ...batchingMetadata(version),
  };
}
