import fastJson from 'fast-json-stringify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CaliperError } from '../../errors.ts';
import type { ModelRepository } from '../../lifecycle/model-repository.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import { mirrorToShadow, routingKeyOf } from '../../lifecycle/traffic-policy.ts';
import { nonFiniteAsNull } from '../../pipeline/postprocess.ts';
import { admit } from '../../pipeline/admission.ts';
import { runPredict, type PredictOutcome } from '../../pipeline/predict-pipeline.ts';
import { serverTimingHeader } from '../../pipeline/stage-timings.ts';
import { responseSchemaOf } from '../openapi.ts';
import { httpAdmissionHints } from '../http-admission.ts';
import type { RequestObserver } from '../request-observer.ts';

interface Serializers {
  single: (doc: unknown) => string;
  batch: (doc: unknown) => string;
  modelName: string;
  modelVersion: string;
}

const serializers = new WeakMap<ModelVersion, Serializers>();

/**
 * The compiled serializer refuses NaN (it writes ±Infinity as null itself): a response holding one is written again
 * with every non-finite number as null, so the fast path costs nothing extra.
 */
function withNonFiniteAsNull(serialize: (doc: unknown) => string): (doc: unknown) => string {
  return (doc) => {
    try {
      return serialize(doc);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.includes('"NaN"')) throw error;
      return serialize(nonFiniteAsNull(doc));
    }
  };
}

/** Compiled (schema-driven) JSON serializers for a version's responses, built once per version. */
function serializersOf(version: ModelVersion): Serializers {
  let found = serializers.get(version);
  if (!found) {
    const schemas = responseSchemaOf(version);
    found = {
      single: withNonFiniteAsNull(fastJson(schemas.single as unknown as Parameters<typeof fastJson>[0])),
      batch: withNonFiniteAsNull(fastJson(schemas.batch as unknown as Parameters<typeof fastJson>[0])),
      modelName: version.name,
      modelVersion: String(version.version),
    };
    serializers.set(version, found);
  }
  return found;
}

/** Every route here runs a model: API keys apply (src/server/auth.ts). */
const INFERENCE = { config: { protection: 'inference' } } as const;

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

/** Hands a failed request's error to fastify's error handler (as a rejected handler promise would). */
function failed(reply: FastifyReply, error: unknown): void {
  reply.send(error instanceof Error ? error : new Error(String(error)));
}

export function registerPredictRoutes(
  app: FastifyInstance,
  repository: ModelRepository,
  observer: RequestObserver,
): void {
  /** Writes the answer to a /predict request (the shadow, if any, gets a copy of the request first). */
  const answer = (version: ModelVersion, body: unknown, reply: FastifyReply, outcome: PredictOutcome): void => {
    const shadow = repository.has(version.name) ? repository.get(version.name).traffic?.shadow : undefined;
    if (shadow && shadow.version !== version) {
      mirrorToShadow(shadow, { result: outcome.predictions, ms: outcome.timings.total }, (candidate) =>
        runPredict(candidate, body).then((mirrored) => mirrored.predictions),
      );
    }
    const latency = round3(outcome.timings.total);
    const s = serializersOf(version);
    reply.header('server-timing', serverTimingHeader(outcome.timings)).type('application/json');
    if (outcome.single) {
      // Object.assign then plain stores: an object spread with extra properties here cost ~2 µs per request.
      const one: Record<string, unknown> = Object.assign({}, outcome.predictions[0]);
      one.latency_ms = latency;
      one.model_name = s.modelName;
      one.model_version = s.modelVersion;
      reply.send(s.single(one));
      return;
    }
    for (const p of outcome.predictions) (p as Record<string, unknown>).latency_ms = latency;
    reply.send(
      s.batch({
        predictions: outcome.predictions,
        latency_ms: latency,
        model_name: s.modelName,
        model_version: s.modelVersion,
      }),
    );
  };

  /**
   * Answers a /predict request through `reply` and returns nothing: fastify waits for the reply without a promise of
   * the handler's to follow, and an error goes to the error handler through reply.send.
   */
  const predict = (version: ModelVersion, body: unknown, reply: FastifyReply): void => {
    // application/octet-stream is read as bytes for the v2 binary extension; /predict takes JSON only.
    if (Buffer.isBuffer(body))
      throw new CaliperError(
        'CALIPER_UNSUPPORTED_MEDIA_TYPE',
        `content-type: expected application/json, got "${String(reply.request.headers['content-type'])}"`,
      );
    // Admitted inside track, so a refused header counts as a failed request as any other 400 does.
    observer
      .track(version, 'predict', () => runPredict(version, body, admit(version, httpAdmissionHints(reply.request))))
      .then(
        (outcome) => {
          try {
            answer(version, body, reply, outcome);
          } catch (error) {
            failed(reply, error);
          }
        },
        (error: unknown) => failed(reply, error),
      );
  };

  app.post<{ Params: { name: string } }>('/models/:name/predict', INFERENCE, (request, reply) =>
    predict(repository.inferenceVersion(request.params.name, undefined, routingKeyOf(request)), request.body, reply),
  );

  app.post<{ Params: { name: string; version: string } }>(
    '/models/:name/versions/:version/predict',
    INFERENCE,
    (request, reply) =>
      predict(repository.inferenceVersion(request.params.name, request.params.version), request.body, reply),
  );

  app.post('/predict', INFERENCE, (request, reply) => {
    const models = repository.list();
    if (models.length !== 1) {
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `POST /predict answers only when exactly one model is served (${models.length} are: ${models.map((m) => m.name).join(', ')}); use POST /models/{name}/predict`,
      );
    }
    return predict(repository.inferenceVersion(models[0]!.name, undefined, routingKeyOf(request)), request.body, reply);
  });
}
