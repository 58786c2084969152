import type { FastifyInstance } from 'fastify';
import {
  Metadata,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerErrorResponse,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { boundedMessage, CaliperError, invalidInput, toCaliperError, type CaliperErrorCode } from '../../errors.ts';
import type { ModelRepository } from '../../lifecycle/model-repository.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import { ROUTING_KEY_HEADER } from '../../lifecycle/traffic-policy.ts';
import type { Logger } from '../../observability/logger.ts';
import type { StatisticsSource } from '../../observability/model-statistics.ts';
import { authorize, type AuthSettings, type Credentials, type Protection } from '../auth.ts';
import { admit, type AdmissionHints } from '../../pipeline/admission.ts';
import { serverTimingHeader, type StageTimings } from '../../pipeline/stage-timings.ts';
import { runTensorInfer } from '../../pipeline/tensor-infer.ts';
import type { RequestObserver } from '../request-observer.ts';
import { modelMetadata, SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from '../routes/v2-routes.ts';
import { tritonModelConfig } from '../../protocol/model-configuration.ts';
import { grpcInputTensors, grpcOutputTensors } from './grpc-tensors.ts';
import { decodeModelInferRequest } from './infer-request-decoder.ts';
import {
  strictRequestDecoders,
  type InferenceRpcName,
  type InferenceRpcs,
  type InferParameter,
  type InferParameters,
  type ModelInferRequest,
  type ModelInferResponse,
  type ModelStatisticsResponse,
  type RepositoryIndexResponse,
  type RequestDecoder,
} from '../../protocol/service-definition.ts';

export interface InferenceServiceContext {
  repository: ModelRepository;
  observer: RequestObserver;
  /**
   * What ModelStatistics answers: the per-version statistics every protocol feeds (the REST /stats routes answer
   * from the same), or under `serve --workers` every worker's merged.
   */
  statistics: StatisticsSource;
  /** The HTTP application: the repository RPCs run its /v2/repository routes, auth and registry included. */
  app: FastifyInstance;
  auth?: AuthSettings;
  logger: Logger;
}

const NOT_FOUND_CODES = new Set<CaliperErrorCode>([
  'CALIPER_MODEL_NOT_FOUND',
  'CALIPER_VERSION_NOT_FOUND',
  'CALIPER_NOT_FOUND',
]);
/**
 * Who may call each RPC, as the HTTP routes declare theirs: the repository RPCs need the admin token, inference
 * the API keys (when set), metadata and statistics are operations, health is open. Typed over every RPC, so a
 * new one cannot be served without a declaration.
 */
export const RPC_PROTECTION: { readonly [N in InferenceRpcName]: Protection } = {
  ServerLive: 'open',
  ServerReady: 'open',
  ModelReady: 'open',
  ServerMetadata: 'operations',
  ModelMetadata: 'operations',
  ModelConfig: 'operations',
  ModelStatistics: 'operations',
  ModelInfer: 'inference',
  ModelStreamInfer: 'inference',
  RepositoryIndex: 'admin',
  RepositoryModelLoad: 'admin',
  RepositoryModelUnload: 'admin',
};

type AnyCall = ServerUnaryCall<Buffer, unknown> | ServerDuplexStream<Buffer, unknown>;

/** A CaliperError as a gRPC status: the catalogue's code, the message as details, the Caliper code and Retry-After as trailers. */
export function grpcStatusOf(thrown: unknown): ServerErrorResponse {
  const error = toCaliperError(thrown);
  const metadata = new Metadata();
  metadata.set('caliper-error-code', error.code);
  if (error.retryAfterSeconds !== undefined)
    metadata.set('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  const message = boundedMessage(error.message);
  return Object.assign(new Error(message), { code: error.grpcStatus, details: message, metadata });
}

function metadataValue(call: AnyCall, key: string): string | undefined {
  const value = call.metadata.get(key)[0];
  return value === undefined ? undefined : String(value);
}

function numericParameter(where: string, parameter: InferParameter | undefined): number | undefined {
  if (parameter === undefined) return undefined;
  const value = parameter.int64_param ?? parameter.uint64_param ?? parameter.double_param;
  if (
    value === undefined ||
    parameter.parameter_choice === 'string_param' ||
    parameter.parameter_choice === 'bool_param'
  ) {
    throw invalidInput(`${where}: expected an integer parameter (int64_param/uint64_param)`);
  }
  return value;
}

/**
 * What a gRPC request asked for, for `admit` (src/pipeline/admission.ts): the call's deadline, x-caliper-timeout-ms /
 * x-caliper-priority metadata, and Triton's `timeout` (microseconds, as Triton's gRPC clients send it; a value not
 * above 0 is no timeout) and `priority` request parameters.
 */
function grpcAdmissionHints(request: ModelInferRequest, call: AnyCall): AdmissionHints {
  const hints: AdmissionHints = { clientGone: () => call.cancelled };
  const timeoutMs = metadataValue(call, 'x-caliper-timeout-ms');
  if (timeoutMs !== undefined) hints.timeoutMs = timeoutMs;
  const timeoutUs = numericParameter('parameters.timeout', request.parameters?.timeout);
  if (timeoutUs !== undefined && timeoutUs > 0) hints.tritonTimeoutUs = timeoutUs;
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(deadlineMs)) hints.transportTimeoutMs = deadlineMs - Date.now();
  const priority = metadataValue(call, 'x-caliper-priority');
  if (priority !== undefined) hints.priority = priority;
  const tritonPriority = numericParameter('parameters.priority', request.parameters?.priority);
  if (tritonPriority !== undefined) hints.tritonPriority = tritonPriority;
  return hints;
}

const EMPTY_FINAL_RESPONSE = 'triton_enable_empty_final_response';
const FINAL_RESPONSE = 'triton_final_response';

/** Whether a stream request asks for Triton's final-response flag and empty final response (a bool_param, as Triton checks). */
function emptyFinalResponseAsked(request: ModelInferRequest): boolean {
  const parameter = request.parameters?.[EMPTY_FINAL_RESPONSE];
  if (parameter === undefined) return false;
  if (parameter.parameter_choice !== undefined && parameter.parameter_choice !== 'bool_param') {
    throw invalidInput(`parameters.${EMPTY_FINAL_RESPONSE}: expected a bool_param, got ${parameter.parameter_choice}`);
  }
  return parameter.bool_param === true;
}

/** The HTTP auth policy applied to a gRPC call: its metadata `authorization` / `x-api-key` stand for the headers. */
function checkCallAuth(settings: AuthSettings | undefined, rpc: string, call: AnyCall): void {
  const credentials: Credentials = {};
  const authorization = metadataValue(call, 'authorization');
  const apiKey = metadataValue(call, 'x-api-key');
  if (authorization !== undefined) credentials.authorization = authorization;
  if (apiKey !== undefined) credentials.apiKey = apiKey;
  authorize(settings ?? {}, (RPC_PROTECTION as Record<string, Protection | undefined>)[rpc], credentials);
}

export class InferenceService {
  constructor(private readonly context: InferenceServiceContext) {}

  /** Runs an admin RPC through the HTTP repository route, so both protocols share one implementation and one auth check. */
  private async repositoryRoute(call: AnyCall, url: string, body: object): Promise<unknown> {
    const authorization = metadataValue(call, 'authorization');
    const response = await this.context.app.inject({
      method: 'POST',
      url,
      payload: body,
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    });
    const parsed = response.body === '' ? {} : (JSON.parse(response.body) as unknown);
    if (response.statusCode >= 400) {
      const { error, code } = parsed as { error?: string; code?: string };
      throw new CaliperError(
        (code ?? 'CALIPER_INTERNAL') as CaliperErrorCode,
        error ?? `${url}: HTTP ${response.statusCode}`,
      );
    }
    return parsed;
  }

  /** One ModelInfer request through the same path as REST v2: validate, schedule (batcher), run, observe. */
  async infer(request: ModelInferRequest, call: AnyCall): Promise<ModelInferResponse> {
    return (await this.inferTimed(request, call)).response;
  }

  /** As infer, with the request's stage timings (sent as `server-timing` metadata on a unary ModelInfer). */
  private async inferTimed(
    request: ModelInferRequest,
    call: AnyCall,
  ): Promise<{ response: ModelInferResponse; timings: StageTimings }> {
    const { repository, observer } = this.context;
    // No version named: the model's traffic policy picks one (canary share, keyed by the routing-key metadata), as over REST.
    const version = repository.inferenceVersion(
      request.model_name,
      request.model_version,
      metadataValue(call, ROUTING_KEY_HEADER) || undefined,
    );
    const inputs = grpcInputTensors(request);
    const outputNames =
      request.outputs !== undefined && request.outputs.length > 0 ? request.outputs.map((o) => o.name) : undefined;
    const outcome = await observer.track(version, 'grpc', () =>
      runTensorInfer(version, inputs, outputNames, admit(version, grpcAdmissionHints(request, call))),
    );
    const names = outputNames ?? version.signature.outputs.map((o) => o.name);
    return {
      response: {
        model_name: version.name,
        model_version: String(version.version),
        id: request.id ?? '',
        ...grpcOutputTensors(outcome.outputs, names),
      },
      timings: outcome.timings,
    };
  }

  /** Unary handlers by RPC name. */
  unaryHandlers(): {
    [N in Exclude<InferenceRpcName, 'ModelStreamInfer'>]: (
      request: InferenceRpcs[N]['request'],
      call: AnyCall,
    ) => Promise<InferenceRpcs[N]['response']>;
  } {
    const { repository, observer } = this.context;
    return {
      ServerLive: async () => ({ live: true }),
      ServerReady: async () => ({ ready: repository.ready && !observer.closing }),
      // As Triton: an unknown model or version is not ready (ready: false), not an error.
      ModelReady: async (request) => {
        let version: ModelVersion;
        try {
          version = repository.version(request.name, request.version || undefined);
        } catch (error) {
          if (NOT_FOUND_CODES.has(toCaliperError(error).code)) return { ready: false };
          throw error;
        }
        return { ready: version.state === 'ready' && !observer.closing };
      },
      ServerMetadata: async () => ({ name: SERVER_NAME, version: SERVER_VERSION, extensions: SERVER_EXTENSIONS }),
      ModelMetadata: async (request) =>
        modelMetadata(repository, repository.version(request.name, request.version || undefined)),
      ModelConfig: async (request) => ({
        config: tritonModelConfig(repository.version(request.name, request.version || undefined)),
      }),
      ModelInfer: async (request, call) => {
        const { response, timings } = await this.inferTimed(request, call);
        // The per-stage durations, as the REST answers carry them in their Server-Timing header.
        const metadata = new Metadata();
        metadata.set('server-timing', serverTimingHeader(timings));
        call.sendMetadata(metadata);
        return response;
      },
      ModelStatistics: async (request) =>
        (await this.context.statistics.stats(
          request.name || undefined,
          request.version || undefined,
        )) as unknown as ModelStatisticsResponse,
      RepositoryIndex: async (request, call) => ({
        models: (await this.repositoryRoute(call, '/v2/repository/index', {
          ready: request.ready === true,
        })) as RepositoryIndexResponse['models'],
      }),
      RepositoryModelLoad: async (request, call) => {
        await this.repositoryRoute(call, `/v2/repository/models/${encodeURIComponent(request.model_name)}/load`, {});
        return {};
      },
      RepositoryModelUnload: async (request, call) => {
        await this.repositoryRoute(call, `/v2/repository/models/${encodeURIComponent(request.model_name)}/unload`, {});
        return {};
      },
    };
  }

  /**
   * The bidirectional stream: each request answered as it completes (in any order, matched by id); errors travel
   * in error_message. A request with Triton's `triton_enable_empty_final_response: true` is answered as a decoupled
   * Triton model answers it: its response flagged `triton_final_response: false`, then an empty response (same id,
   * model and version) flagged `triton_final_response: true`; an error is itself the final response.
   */
  stream(call: ServerDuplexStream<Buffer, unknown>, decode: RequestDecoder): void {
    try {
      checkCallAuth(this.context.auth, 'ModelStreamInfer', call);
    } catch (error) {
      call.emit('error', grpcStatusOf(error));
      return;
    }
    let pending = 0;
    let ended = false;
    const finish = (): void => {
      if (ended && pending === 0) call.end();
    };
    const answer = (...messages: unknown[]): void => {
      pending--;
      for (const message of messages) if (!call.cancelled && !call.destroyed) call.write(message);
      finish();
    };
    call.on('data', (message: Buffer) => {
      pending++;
      let request: ModelInferRequest;
      let finalFlag: boolean;
      try {
        request = decode(message) as ModelInferRequest;
      } catch (error) {
        answer({ error_message: boundedMessage(`malformed ModelInferRequest protobuf: ${(error as Error).message}`) });
        return;
      }
      const head = { model_name: request.model_name, model_version: request.model_version ?? '', id: request.id ?? '' };
      try {
        finalFlag = emptyFinalResponseAsked(request);
      } catch (error) {
        answer({
          error_message: boundedMessage(toCaliperError(error).message),
          infer_response: { ...head, outputs: [], raw_output_contents: [] },
        });
        return;
      }
      const flag = (final: boolean): { parameters?: InferParameters } =>
        finalFlag ? { parameters: { [FINAL_RESPONSE]: { bool_param: final } } } : {};
      this.infer(request, call).then(
        (response) => {
          if (!finalFlag) answer({ error_message: '', infer_response: response });
          else
            answer(
              { error_message: '', infer_response: { ...response, ...flag(false) } },
              { error_message: '', infer_response: { ...head, outputs: [], raw_output_contents: [], ...flag(true) } },
            );
        },
        (error: unknown) => {
          const failure = toCaliperError(error);
          if (failure.httpStatus >= 500 && failure.code === 'CALIPER_INTERNAL')
            this.context.logger.error({ err: error }, failure.message);
          answer({
            error_message: boundedMessage(failure.message),
            infer_response: { ...head, outputs: [], raw_output_contents: [], ...flag(true) },
          });
        },
      );
    });
    call.on('end', () => {
      ended = true;
      finish();
    });
    call.on('error', () => {
      ended = true;
    });
  }

  /**
   * The grpc-js implementation. Requests arrive as bytes and are decoded here, so that a malformed protobuf
   * is answered INVALID_ARGUMENT with the reason rather than grpc-js's bare INTERNAL.
   */
  implementation(definition: ServiceDefinition): UntypedServiceImplementation {
    const handlers = this.unaryHandlers() as Record<string, (request: unknown, call: AnyCall) => Promise<unknown>>;
    const decoders: Record<string, RequestDecoder> = {
      ...strictRequestDecoders(),
      ModelInfer: decodeModelInferRequest,
      ModelStreamInfer: decodeModelInferRequest,
    };
    const implementation: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(definition)) {
      const decode = decoders[name];
      if (!decode) continue;
      if (name === 'ModelStreamInfer') {
        implementation[name] = (call: ServerDuplexStream<Buffer, unknown>) => this.stream(call, decode);
        continue;
      }
      const handler = handlers[name];
      if (!handler) continue;
      implementation[name] = (
        call: ServerUnaryCall<Buffer, unknown>,
        callback: (error: ServerErrorResponse | null, value?: unknown) => void,
      ) => {
        let request: unknown;
        try {
          checkCallAuth(this.context.auth, name, call);
        } catch (error) {
          callback(grpcStatusOf(error));
          return;
        }
        try {
          request = decode(call.request);
        } catch (error) {
          callback(
            grpcStatusOf(
              new CaliperError(
                'CALIPER_MALFORMED_BODY',
                `malformed ${method.path.split('/').pop()} request protobuf: ${(error as Error).message}`,
              ),
            ),
          );
          return;
        }
        handler(request, call).then(
          (response) => callback(null, response),
          (error: unknown) => {
            const failure = toCaliperError(error);
            if (failure.code === 'CALIPER_INTERNAL' || failure.code === 'CALIPER_INFERENCE_FAILED')
              this.context.logger.error({ err: error }, failure.message);
            callback(grpcStatusOf(failure));
          },
        );
      };
    }
    return implementation;
  }
}
