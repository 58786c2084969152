import {
  Client,
  credentials,
  Metadata,
  status,
  type ChannelOptions,
  type ClientDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  inferenceServiceDefinition,
  type GrpcTensor,
  type InferenceRpcName,
  type InferenceRpcs,
  type ModelInferRequest,
  type ModelInferResponse,
  type ModelStreamInferResponse,
} from '../protocol/service-definition.ts';
import { InferenceClientError } from './client-error.ts';
import {
  DEFAULT_RETRY_POLICY,
  type InferenceClient,
  type InferInput,
  type InferOptions,
  type InferOutput,
  type InferResult,
  type ModelMetadata,
  type RetryPolicy,
  type ServerMetadata,
} from './infer-types.ts';
import { withRetries } from './retry-loop.ts';
import { inputBytes, outputFromRaw, outputFromValues } from './tensor-codec.ts';

export interface GrpcClientOptions {
  /** host:port of the server's gRPC endpoint. */
  address: string;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** grpc-js channel options (message size limits, keepalive, …). */
  channelOptions?: ChannelOptions;
  /** Sent as x-api-key metadata when the server asks for API keys. */
  apiKey?: string;
}

function clientError(error: ServiceError): InferenceClientError {
  const code = error.metadata?.get('caliper-error-code')[0];
  const retryAfter = Number(error.metadata?.get('retry-after')[0]);
  return new InferenceClientError(error.details || error.message, {
    grpcCode: error.code,
    ...(code !== undefined ? { code: String(code) } : {}),
    ...(Number.isFinite(retryAfter) ? { retryAfterSeconds: retryAfter } : {}),
    retryable: error.code === status.UNAVAILABLE,
    cause: error,
  });
}

function inferRequest(model: string, inputs: InferInput[], options: InferOptions): ModelInferRequest {
  return {
    model_name: model,
    model_version: options.version === undefined ? '' : String(options.version),
    id: options.id ?? '',
    inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    outputs: (options.outputs ?? []).map((name) => ({ name })),
    raw_input_contents: inputs.map(inputBytes),
    // The priority parameter is Triton's numbering (1 highest); Caliper's level 0 is Triton's 1.
    ...(options.priority !== undefined ? { parameters: { priority: { uint64_param: options.priority + 1 } } } : {}),
  };
}

/** Output tensors from raw_output_contents, or from typed contents when a server sends those. */
function inferResult(response: ModelInferResponse): InferResult {
  const raws = response.raw_output_contents ?? [];
  const outputs: Record<string, InferOutput> = {};
  response.outputs.forEach((o: GrpcTensor, i) => {
    if (raws.length > 0) {
      outputs[o.name] = outputFromRaw(o.name, o.datatype, o.shape, raws[i]!);
      return;
    }
    const values = Object.values(o.contents ?? {}).find((v) => Array.isArray(v) && v.length > 0) as
      | unknown[]
      | undefined;
    outputs[o.name] = outputFromValues(o.name, o.datatype, o.shape, values ?? []);
  });
  return {
    modelName: response.model_name,
    modelVersion: response.model_version,
    ...(response.id ? { id: response.id } : {}),
    outputs,
  };
}

/** Open Inference Protocol v2 over gRPC: one HTTP/2 channel for the client's life, deadlines, retries on UNAVAILABLE, raw tensor contents. */
export class GrpcInferenceClient implements InferenceClient {
  private readonly client: Client;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly apiKey: string | undefined;

  constructor(options: GrpcClientOptions) {
    this.apiKey = options.apiKey;
    this.client = new Client(options.address, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      ...options.channelOptions,
    });
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  }

  /** One unary RPC with a deadline, retried on UNAVAILABLE. */
  rpc<N extends Exclude<InferenceRpcName, 'ModelStreamInfer'>>(
    name: N,
    request: InferenceRpcs[N]['request'],
    timeoutMs = this.timeoutMs,
    metadata = this.metadata(),
  ): Promise<InferenceRpcs[N]['response']> {
    const method = inferenceServiceDefinition()[name]!;
    return withRetries(
      this.retry,
      timeoutMs,
      (remaining) =>
        new Promise((resolve, reject) => {
          this.client.makeUnaryRequest(
            method.path,
            method.requestSerialize,
            method.responseDeserialize,
            request,
            metadata,
            { deadline: Date.now() + remaining },
            (error: ServiceError | null, response?: unknown) =>
              error ? reject(clientError(error)) : resolve(response as InferenceRpcs[N]['response']),
          );
        }),
    );
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.apiKey !== undefined) metadata.set('x-api-key', this.apiKey);
    return metadata;
  }

  async serverLive(): Promise<boolean> {
    return (await this.rpc('ServerLive', {})).live;
  }

  async serverReady(): Promise<boolean> {
    return (await this.rpc('ServerReady', {})).ready;
  }

  async modelReady(model: string, version?: string | number): Promise<boolean> {
    return (await this.rpc('ModelReady', { name: model, version: version === undefined ? '' : String(version) })).ready;
  }

  serverMetadata(): Promise<ServerMetadata> {
    return this.rpc('ServerMetadata', {});
  }

  modelMetadata(model: string, version?: string | number): Promise<ModelMetadata> {
    return this.rpc('ModelMetadata', { name: model, version: version === undefined ? '' : String(version) });
  }

  async infer(model: string, inputs: InferInput[], options: InferOptions = {}): Promise<InferResult> {
    return inferResult(await this.rpc('ModelInfer', inferRequest(model, inputs, options), options.timeoutMs));
  }

  /** Opens a ModelStreamInfer stream: many requests in flight on one call, answers matched by id. */
  openStream(): InferStream {
    const method = inferenceServiceDefinition().ModelStreamInfer!;
    const call = this.client.makeBidiStreamRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      this.metadata(),
    ) as ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse>;
    return new InferStream(call);
  }

  close(): void {
    this.client.close();
  }
}

/** The client side of ModelStreamInfer: infer() writes a request and resolves when its answer (same id) arrives. */
export class InferStream {
  private readonly waiting = new Map<string, { resolve: (r: InferResult) => void; reject: (e: Error) => void }>();
  private next = 0;
  private failure: Error | undefined;

  constructor(private readonly call: ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse>) {
    call.on('data', (message: ModelStreamInferResponse) => {
      const id = message.infer_response?.id ?? '';
      const waiter = this.waiting.get(id);
      if (!waiter) return;
      this.waiting.delete(id);
      if (message.error_message) waiter.reject(new InferenceClientError(message.error_message, { retryable: false }));
      else waiter.resolve(inferResult(message.infer_response!));
    });
    const fail = (error: Error): void => {
      this.failure = error;
      for (const waiter of this.waiting.values()) waiter.reject(error);
      this.waiting.clear();
    };
    call.on('error', (error: ServiceError) => fail(clientError(error)));
    call.on('end', () => fail(new InferenceClientError('the server ended the stream', { retryable: true })));
  }

  infer(model: string, inputs: InferInput[], options: InferOptions = {}): Promise<InferResult> {
    if (this.failure) return Promise.reject(this.failure);
    const id = options.id ?? `s${this.next++}`;
    if (this.waiting.has(id))
      return Promise.reject(
        new InferenceClientError(`id "${id}" is already in flight on this stream`, { retryable: false }),
      );
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.call.write(inferRequest(model, inputs, { ...options, id }));
    });
  }

  /** Half-closes the stream; answers still due arrive before it ends. */
  close(): void {
    this.call.end();
  }
}
