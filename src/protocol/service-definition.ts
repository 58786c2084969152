import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { TritonModelConfig } from './model-configuration.ts';

/** The .proto file of `inference.GRPCInferenceService`, shared by the server, the client and the tests. */
export const INFERENCE_PROTO_PATH = fileURLToPath(new URL('./inference-service.proto', import.meta.url));

export const INFERENCE_SERVICE_NAME = 'inference.GRPCInferenceService';

/**
 * snake_case field names as on the wire, int64 as JS numbers (shapes and counters stay far below 2^53;
 * exact 64-bit values travel in raw contents), unset fields as their proto3 defaults.
 */
const LOADER_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export type ParameterChoice = 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';

export interface InferParameter {
  bool_param?: boolean;
  int64_param?: number;
  string_param?: string;
  double_param?: number;
  uint64_param?: number;
  /** Which choice is set (decoded messages only). */
  parameter_choice?: ParameterChoice;
}

export type InferParameters = Record<string, InferParameter>;

export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  /** 64-bit integers: numbers, or bigints beyond 2^53 when decoded exactly. */
  int64_contents?: (number | bigint)[];
  uint_contents?: number[];
  uint64_contents?: (number | bigint)[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface GrpcTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: InferParameters;
  contents?: InferTensorContents | null;
}

export interface RequestedOutput {
  name: string;
  parameters?: InferParameters;
}

export interface ModelInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: InferParameters;
  inputs: GrpcTensor[];
  outputs?: RequestedOutput[];
  raw_input_contents?: Uint8Array[];
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: InferParameters;
  outputs: GrpcTensor[];
  raw_output_contents?: Uint8Array[];
}

export interface ModelStreamInferResponse {
  error_message?: string;
  infer_response?: ModelInferResponse | null;
}

export interface ModelRef {
  name: string;
  version?: string;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ServerMetadataResponse {
  name: string;
  version: string;
  extensions: string[];
}

export interface StatisticDuration {
  count: number;
  ns: number;
}

export interface InferStatistics {
  success: StatisticDuration;
  fail: StatisticDuration;
  queue: StatisticDuration;
  compute_input: StatisticDuration;
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
  cache_hit: StatisticDuration;
  cache_miss: StatisticDuration;
}

export interface InferBatchStatistics {
  batch_size: number;
  compute_input: StatisticDuration;
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
}

export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: InferStatistics;
  batch_stats: InferBatchStatistics[];
}

export interface ModelStatisticsResponse {
  model_stats: ModelStatistics[];
}

export interface RepositoryIndexRequest {
  repository_name?: string;
  ready?: boolean;
}
export interface RepositoryModelIndex {
  name: string;
  version: string;
  state: string;
  reason: string;
}
export interface RepositoryIndexResponse {
  models: RepositoryModelIndex[];
}
export interface RepositoryModelRequest {
  repository_name?: string;
  model_name: string;
}

/** Request and response types of each RPC, by method name. */
export interface InferenceRpcs {
  ServerLive: { request: Record<string, never>; response: { live: boolean } };
  ServerReady: { request: Record<string, never>; response: { ready: boolean } };
  ModelReady: { request: ModelRef; response: { ready: boolean } };
  ServerMetadata: { request: Record<string, never>; response: ServerMetadataResponse };
  ModelMetadata: { request: ModelRef; response: ModelMetadataResponse };
  ModelConfig: { request: ModelRef; response: { config: TritonModelConfig } };
  ModelInfer: { request: ModelInferRequest; response: ModelInferResponse };
  ModelStreamInfer: { request: ModelInferRequest; response: ModelStreamInferResponse };
  ModelStatistics: { request: ModelRef; response: ModelStatisticsResponse };
  RepositoryIndex: { request: RepositoryIndexRequest; response: RepositoryIndexResponse };
  RepositoryModelLoad: { request: RepositoryModelRequest; response: Record<string, never> };
  RepositoryModelUnload: { request: RepositoryModelRequest; response: Record<string, never> };
}

export type InferenceRpcName = keyof InferenceRpcs;

let cached: ServiceDefinition | undefined;

/** The service definition (method paths, serializers) built from the .proto, loaded once. */
export function inferenceServiceDefinition(): ServiceDefinition {
  if (!cached) {
    const packageDefinition = loadSync(INFERENCE_PROTO_PATH, LOADER_OPTIONS);
    const loaded = loadPackageDefinition(packageDefinition) as unknown as {
      inference: { GRPCInferenceService: { service: ServiceDefinition } };
    };
    cached = loaded.inference.GRPCInferenceService.service;
  }
  return cached;
}

/** Decodes one request message to the same plain-object shape the loader produces. */
export type RequestDecoder = (message: Uint8Array) => unknown;

let decoders: Record<string, RequestDecoder> | undefined;

/**
 * Request decoders by method name, for the server. These use protobufjs 8, whose reader rejects
 * truncated fields and lengths past the end of the message that the loader's older reader lets through.
 */
export function strictRequestDecoders(): Record<string, RequestDecoder> {
  if (!decoders) {
    const root = new protobuf.Root().loadSync(INFERENCE_PROTO_PATH, { keepCase: true });
    root.resolveAll();
    const service = root.lookupService(INFERENCE_SERVICE_NAME);
    const conversion = { longs: Number, enums: String, defaults: true, oneofs: true };
    decoders = Object.fromEntries(
      Object.values(service.methods).map((method) => {
        const type = method.resolvedRequestType!;
        return [method.name, (message: Uint8Array) => type.toObject(type.decode(message), conversion)];
      }),
    );
  }
  return decoders;
}
