import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ModelRepository } from '../../lifecycle/model-repository.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import { routingKeyOf } from '../../lifecycle/traffic-policy.ts';
import { serverTimingHeader } from '../../pipeline/stage-timings.ts';
import { admit } from '../../pipeline/admission.ts';
import { runTensorInfer } from '../../pipeline/tensor-infer.ts';
import { modelMetadata, SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from '../../protocol/model-metadata.ts';
import {
  BINARY_CONTENT_TYPE,
  BINARY_HEADER_LENGTH,
  decodeInferBody,
  encodeInferResponse,
} from '../../protocol/binary-tensors.ts';
import { httpAdmissionHints } from '../http-admission.ts';
import type { RequestObserver } from '../request-observer.ts';
import { tritonModelConfig } from '../../protocol/model-configuration.ts';

/** Who may reach each route (src/server/auth.ts): probes open, metadata as operations, infer behind the API keys. */
const OPEN = { config: { protection: 'open' } } as const;
const OPERATIONS = { config: { protection: 'operations' } } as const;
const INFERENCE = { config: { protection: 'inference' } } as const;

export function registerV2Routes(app: FastifyInstance, repository: ModelRepository, observer: RequestObserver): void {
  app.get('/v2', OPERATIONS, async () => ({
    name: SERVER_NAME,
    version: SERVER_VERSION,
    extensions: SERVER_EXTENSIONS,
  }));

  app.get('/v2/health/live', OPEN, async () => ({ live: true }));

  app.get('/v2/health/ready', OPEN, async (_request, reply) => {
    const ready = repository.ready && !observer.closing;
    // The models that failed to load, with the reason: what a readiness probe's operator needs to see.
    const failed = repository.currentFailures().map((f) => ({ name: f.name, reason: f.reason }));
    return reply.code(ready ? 200 : 503).send(failed.length > 0 ? { ready, failed_models: failed } : { ready });
  });

  type VersionParams = { name: string; version?: string };
  const versionOf = (params: VersionParams): ModelVersion => repository.version(params.name, params.version);
  // Inference naming no version goes where the traffic policy says (a canary takes its share); a version not ready refuses.
  const routedVersionOf = (params: VersionParams, request: FastifyRequest): ModelVersion =>
    repository.inferenceVersion(params.name, params.version, routingKeyOf(request));

  // Under the binary tensor extension the body is JSON then raw tensors, whatever its content-type says.
  const binaryBody = async (request: FastifyRequest): Promise<void> => {
    if (request.headers[BINARY_HEADER_LENGTH] !== undefined) request.headers['content-type'] = BINARY_CONTENT_TYPE;
  };
  for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get<{ Params: VersionParams }>(prefix, OPERATIONS, async (request) =>
      modelMetadata(repository, versionOf(request.params)),
    );

    // Triton's model configuration extension: the version's settings in ModelConfig's field names.
    app.get<{ Params: VersionParams }>(`${prefix}/config`, OPERATIONS, async (request) =>
      tritonModelConfig(versionOf(request.params)),
    );

    app.get<{ Params: VersionParams }>(`${prefix}/ready`, OPEN, async (request, reply) => {
      const version = versionOf(request.params);
      const ready = version.state === 'ready' && !observer.closing;
      return reply.code(ready ? 200 : 503).send({ name: version.name, version: String(version.version), ready });
    });

    app.post<{ Params: VersionParams }>(
      `${prefix}/infer`,
      { onRequest: binaryBody, ...INFERENCE },
      async (request, reply) => {
        const version = routedVersionOf(request.params, request);
        const { request: infer, inputs } = decodeInferBody(request.body, request.headers[BINARY_HEADER_LENGTH]);
        const outputNames = infer.outputs?.map((o) => o.name);
        // The protocol's own request parameters, as Triton reads them: `timeout` (microseconds) and `priority`
        // (Triton's numbering); admission decides what they mean beside the headers.
        const { timeout, priority } = infer.parameters ?? {};
        const options = admit(version, {
          ...httpAdmissionHints(request),
          ...(timeout !== undefined ? { tritonTimeoutUs: timeout } : {}),
          ...(priority !== undefined ? { tritonPriority: priority } : {}),
        });
        const outcome = await observer.track(version, 'v2', () =>
          runTensorInfer(version, inputs, outputNames, options),
        );
        const names = outputNames ?? version.signature.outputs.map((o) => o.name);
        reply.header('server-timing', serverTimingHeader(outcome.timings));
        const head = {
          model_name: version.name,
          model_version: String(version.version),
          ...(infer.id !== undefined ? { id: infer.id } : {}),
        };
        const response = encodeInferResponse(head, infer, outcome.outputs, names);
        if (response.headerLength === undefined) return reply.type('application/json').send(response.body);
        return reply
          .header(BINARY_HEADER_LENGTH, String(response.headerLength))
          .type(BINARY_CONTENT_TYPE)
          .send(response.body);
      },
    );
  }
}
