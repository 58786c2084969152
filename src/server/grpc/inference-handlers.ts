import { Metadata } from '@grpc/grpc-js';
import { toCaliperError, type CaliperErrorCode } from '../../errors.ts';
import type { ModelRepository } from '../../lifecycle/model-repository.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import { ROUTING_KEY_HEADER } from '../../lifecycle/traffic-policy.ts';
import type { StatisticsSource } from '../../observability/model-statistics.ts';
import { admit } from '../../pipeline/admission.ts';
import { serverTimingHeader, type StageTimings } from '../../pipeline/stage-timings.ts';
import { runTensorInfer } from '../../pipeline/tensor-infer.ts';
import { tritonModelConfig } from '../../protocol/model-configuration.ts';
import { modelMetadata, SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from '../../protocol/model-metadata.ts';
import type { RepositoryControl } from '../../protocol/repository-control.ts';
import type {
  InferenceRpcName,
  InferenceRpcs,
  ModelInferRequest,
  ModelInferResponse,
  ModelStatisticsResponse,
} from '../../protocol/service-definition.ts';
import type { RequestObserver } from '../request-observer.ts';
import type { AnyCall } from './call-metadata.ts';
import { metadataValue } from './call-metadata.ts';
import { grpcAdmissionHints } from './grpc-admission.ts';
import { grpcInputTensors, grpcOutputTensors } from './grpc-tensors.ts';

/** What the handlers answer from: the same repository, observer, statistics and model control as the REST routes. */
export interface InferenceHandlerContext {
  repository: ModelRepository;
  observer: RequestObserver;
  /**
   * What ModelStatistics answers: the per-version statistics every protocol feeds (the REST /stats routes answer
   * from the same), or under `serve --workers` every worker's merged.
   */
  statistics: StatisticsSource;
  /** Model control (RepositoryIndex/ModelLoad/ModelUnload), shared with the /v2/repository routes. */
  control: RepositoryControl;
}

/** Each unary RPC's handler: the decoded request in, the response object out; failures thrown as CaliperErrors. */
export type UnaryHandlers = {
  [N in Exclude<InferenceRpcName, 'ModelStreamInfer'>]: (
    request: InferenceRpcs[N]['request'],
    call: AnyCall,
  ) => Promise<InferenceRpcs[N]['response']>;
};

const NOT_FOUND_CODES = new Set<CaliperErrorCode>([
  'CALIPER_MODEL_NOT_FOUND',
  'CALIPER_VERSION_NOT_FOUND',
  'CALIPER_NOT_FOUND',
]);

/**
 * One ModelInfer request through the same path as REST v2: the version routed (traffic policy), tensors decoded,
 * admitted, the stage list from validate through inference, observed. Resolves the response and its stage timings.
 */
export async function inferTimed(
  context: InferenceHandlerContext,
  request: ModelInferRequest,
  call: AnyCall,
): Promise<{ response: ModelInferResponse; timings: StageTimings }> {
  const { repository, observer } = context;
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

/** The unary handlers by RPC name: thin adapters over the pipeline, the metadata and the repository control. */
export function unaryHandlers(context: InferenceHandlerContext): UnaryHandlers {
  const { repository, observer, statistics, control } = context;
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
      const { response, timings } = await inferTimed(context, request, call);
      // The per-stage durations, as the REST answers carry them in their Server-Timing header.
      const metadata = new Metadata();
      metadata.set('server-timing', serverTimingHeader(timings));
      call.sendMetadata(metadata);
      return response;
    },
    ModelStatistics: async (request) =>
      (await statistics.stats(
        request.name || undefined,
        request.version || undefined,
      )) as unknown as ModelStatisticsResponse,
    RepositoryIndex: async (request) => ({
      models: (await control.index(request.ready === true)).map((entry) => ({
        name: entry.name,
        version: entry.version ?? '',
        state: entry.state,
        reason: entry.reason ?? '',
      })),
    }),
    RepositoryModelLoad: async (request) => {
      await control.load(request.model_name);
      return {};
    },
    RepositoryModelUnload: async (request) => {
      await control.unload(request.model_name);
      return {};
    },
  };
}
