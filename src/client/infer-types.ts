import type { V2Datatype } from '../protocol/datatypes.ts';

export type TensorDatatype = V2Datatype;

/** Tensor elements: a typed array matching the datatype travels as-is; plain arrays are converted. */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | number[]
  | boolean[]
  | string[];

export interface InferInput {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  data: TensorValues;
}

export interface InferOptions {
  /** Model version; the server's default when absent. */
  version?: string | number;
  id?: string;
  /** Outputs to return; all of them when absent. */
  outputs?: string[];
  /** Overrides the client's timeout for this call (covers every retry). */
  timeoutMs?: number;
  /** Scheduling priority, 0 highest. */
  priority?: number;
}

/**
 * An output tensor: FP32 as Float32Array, INT64 as BigInt64Array, …, BOOL as Uint8Array (0/1),
 * FP16 as Uint16Array (raw half-precision bits), BYTES as UTF-8 strings.
 */
export interface InferOutput {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  data: Exclude<TensorValues, number[] | boolean[]>;
}

export interface InferResult {
  modelName: string;
  modelVersion: string;
  id?: string;
  outputs: Record<string, InferOutput>;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** Retries of calls refused as overloaded or unavailable (HTTP 503, gRPC UNAVAILABLE, refused connections). */
export interface RetryPolicy {
  /** Attempts in all, the first included (1 disables retries). */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 4,
  initialDelayMs: 50,
  maxDelayMs: 2000,
  multiplier: 2,
};

/** The calls both the REST and the gRPC client answer. */
export interface InferenceClient {
  serverLive(): Promise<boolean>;
  serverReady(): Promise<boolean>;
  modelReady(model: string, version?: string | number): Promise<boolean>;
  serverMetadata(): Promise<ServerMetadata>;
  modelMetadata(model: string, version?: string | number): Promise<ModelMetadata>;
  infer(model: string, inputs: InferInput[], options?: InferOptions): Promise<InferResult>;
  close(): void;
}
