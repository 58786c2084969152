/** caliper/client: typed Open Inference Protocol v2 clients for REST (JSON or binary tensors) and gRPC. */
export { RestInferenceClient, type RestClientOptions } from './rest-client.ts';
export { GrpcInferenceClient, InferStream, type GrpcClientOptions } from './grpc-client.ts';
export { InferenceClientError } from './client-error.ts';
export {
  DEFAULT_RETRY_POLICY,
  type InferenceClient,
  type InferInput,
  type InferOptions,
  type InferOutput,
  type InferResult,
  type ModelMetadata,
  type RetryPolicy,
  type ServerMetadata,
  type TensorDatatype,
  type TensorMetadata,
  type TensorValues,
} from './infer-types.ts';
