import type { InputFieldSpec } from '../config/model-config.ts';
import type { ModelRepository } from '../lifecycle/model-repository.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { Postprocessor } from '../pipeline/postprocess.ts';

type JsonSchema = Record<string, unknown>;

function fieldSchema(spec: InputFieldSpec): JsonSchema {
  const schema: JsonSchema = {};
  if (spec.type === 'array') {
    schema.type = 'array';
    schema.items = { type: spec.items ?? 'number' };
    if (spec.length !== undefined) { schema.minItems = spec.length; schema.maxItems = spec.length; }
  } else {
    schema.type = spec.type;
  }
  if (spec.enum) schema.enum = spec.enum;
  if (spec.minimum !== undefined) schema.minimum = spec.minimum;
  if (spec.maximum !== undefined) schema.maximum = spec.maximum;
  if (spec.default !== undefined) schema.default = spec.default;
  if (spec.description) schema.description = spec.description;
  return schema;
}

/** JSON schema of one /predict request object for this model. */
export function requestSchemaOf(version: ModelVersion): JsonSchema {
  const { inputs, unknownFields } = version.config;
  return {
    type: 'object',
    properties: Object.fromEntries(inputs.map((i) => [i.name, fieldSchema(i)])),
    required: inputs.filter((i) => i.required).map((i) => i.name),
    additionalProperties: unknownFields === 'ignore',
  };
}

/** JSON schema of one prediction (the postprocess fields plus latency_ms). */
export function predictionSchemaOf(version: ModelVersion): JsonSchema {
  const properties: JsonSchema = {};
  for (const field of version.config.postprocess) properties[field.name] = Postprocessor.fieldSchema(field, version.signature.outputs);
  properties.latency_ms = { type: 'number', description: 'server time for the whole request, in milliseconds' };
  if (version.config.features) {
    properties.features_degraded = { type: 'boolean', description: 'present (true) when the feature store was slow or down and default features were used' };
  }
  return { type: 'object', properties, additionalProperties: version.hooks?.postprocess !== undefined };
}

/** The /predict response: a prediction (single request) or {predictions: [...]}, with the model's name and version. */
export function responseSchemaOf(version: ModelVersion): { single: JsonSchema; batch: JsonSchema } {
  const prediction = predictionSchemaOf(version);
  const identity = { model_name: { type: 'string' }, model_version: { type: 'string' } };
  return {
    single: { ...prediction, properties: { ...(prediction.properties as JsonSchema), ...identity } },
    batch: {
      type: 'object',
      properties: { predictions: { type: 'array', items: prediction }, latency_ms: { type: 'number' }, ...identity },
    },
  };
}

const errorResponse = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };

/** The OpenAPI 3 document: one /predict path per served model with its request and response schemas, and the v2 protocol paths. */
export function buildOpenApiDocument(repository: ModelRepository, serverVersion: string): JsonSchema {
  const paths: JsonSchema = {};
  const schemas: JsonSchema = {
    Error: { type: 'object', properties: { error: { type: 'string' }, code: { type: 'string' } }, required: ['error'] },
  };
  for (const model of repository.list()) {
    const version = model.versions.get(model.defaultVersion)!;
    const request = requestSchemaOf(version);
    const responses = responseSchemaOf(version);
    const key = model.name.replace(/[^A-Za-z0-9_]/g, '_');
    schemas[`${key}_request`] = request;
    schemas[`${key}_response`] = responses.single;
    schemas[`${key}_batch_response`] = responses.batch;
    paths[`/models/${model.name}/predict`] = {
      post: {
        summary: `Predict with ${model.name}${model.config.description ? `: ${model.config.description}` : ''}`,
        tags: [model.name],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                oneOf: [
                  { $ref: `#/components/schemas/${key}_request` },
                  { type: 'object', properties: { instances: { type: 'array', items: { $ref: `#/components/schemas/${key}_request` } } }, required: ['instances'] },
                ],
              },
            },
          },
        },
        responses: {
          200: {
            description: 'predictions (Server-Timing header holds the per-stage durations)',
            content: { 'application/json': { schema: { oneOf: [{ $ref: `#/components/schemas/${key}_response` }, { $ref: `#/components/schemas/${key}_batch_response` }] } } },
          },
          400: errorResponse, 404: errorResponse, 413: errorResponse, 503: errorResponse, 504: errorResponse,
        },
      },
    };
  }
  const v2 = (summary: string, method: 'get' | 'post' = 'get'): JsonSchema => ({ [method]: { summary, tags: ['Open Inference Protocol v2'], responses: { 200: { description: 'ok' }, 404: errorResponse } } });
  Object.assign(paths, {
    '/v2': v2('Server metadata'),
    '/v2/health/live': v2('Server liveness'),
    '/v2/health/ready': v2('Server readiness'),
    '/v2/models/{model_name}': v2('Model metadata'),
    '/v2/models/{model_name}/ready': v2('Model readiness'),
    '/v2/models/{model_name}/infer': v2('Inference with raw tensors', 'post'),
    '/v2/models/{model_name}/versions/{model_version}': v2('Model version metadata'),
    '/v2/models/{model_name}/versions/{model_version}/ready': v2('Model version readiness'),
    '/v2/models/{model_name}/versions/{model_version}/infer': v2('Inference on a given version', 'post'),
  });
  return {
    openapi: '3.0.3',
    info: { title: 'Caliper model server', version: serverVersion, description: 'Typed /predict endpoints generated from each model.yaml, and the Open Inference Protocol v2.' },
    paths,
    components: { schemas },
  };
}
