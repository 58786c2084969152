import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requestSchemaOfInputs, synthesizeRequests } from '../bench/request-synthesizer.ts';
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
    if (spec.length !== undefined) {
      schema.minItems = spec.length;
      schema.maxItems = spec.length;
    }
    if (spec.minLength !== undefined) schema.minItems = spec.minLength;
    if (spec.maxLength !== undefined) schema.maxItems = spec.maxLength;
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
  for (const field of version.config.postprocess)
    properties[field.name] = Postprocessor.fieldSchema(field, version.signature.outputs);
  properties.latency_ms = { type: 'number', description: 'server time for the whole request, in milliseconds' };
  if (version.config.features) {
    properties.features_degraded = {
      type: 'boolean',
      description: 'present (true) when the feature store was slow or down and default features were used',
    };
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

const errorResponse = (description: string): JsonSchema => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});
const BODY_ERRORS = {
  400: errorResponse('bad input: the message names the field and what was expected'),
  404: errorResponse('unknown model or version'),
  413: errorResponse('body larger than --body-limit'),
  415: errorResponse('a declared content type that is not JSON'),
  503: errorResponse('queue full or model not ready (Retry-After)'),
  504: errorResponse('deadline passed while queued'),
};

/** A model folder's sample-request.json, or one request synthesized from its schema, as the docs' example. */
function requestExample(version: ModelVersion): unknown {
  const file = join(version.config.dir, 'sample-request.json');
  if (existsSync(file)) {
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      return Array.isArray(parsed) ? parsed[0] : parsed;
    } catch {
      // fall through to a synthesized example
    }
  }
  return synthesizeRequests(requestSchemaOfInputs(version.config.inputs), 'docs', { count: 1 }).documents[0];
}

type Operation = {
  summary: string;
  tags: string[];
  description?: string;
  security?: JsonSchema[];
  requestBody?: JsonSchema;
  responses: JsonSchema;
  parameters?: JsonSchema[];
};
const operation = (summary: string, tag: string, extra: Partial<Operation> = {}): Operation => ({
  summary,
  tags: [tag],
  responses: { 200: { description: 'ok' }, 404: errorResponse('unknown model or version') },
  ...extra,
});
const OPERATIONS = 'Operations (metrics, statistics, SLA)';
const REPOSITORY = 'Model repository (admin token)';
const V2 = 'Open Inference Protocol v2';

/** A fastify route as registered: its method(s) and URL with :params. */
export interface RegisteredRoute {
  method: string | string[];
  url: string;
  hidden?: boolean;
}

/**
 * The OpenAPI 3 document: per served model its /predict routes (default version, each version, the /predict
 * alias) with the model's own request schema and sample request, the v2 protocol, operations and repository
 * control. Any other registered route is listed too, so the document never misses a route the server answers.
 */
export function buildOpenApiDocument(
  repository: ModelRepository,
  serverVersion: string,
  routes: readonly RegisteredRoute[] = [],
): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  const schemas: JsonSchema = {
    Error: { type: 'object', properties: { error: { type: 'string' }, code: { type: 'string' } }, required: ['error'] },
  };
  const models = repository.list();
  const predictOperation = (name: string, key: string, example: unknown, summary: string): Operation => ({
    summary,
    tags: [name],
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema: {
            oneOf: [
              { $ref: `#/components/schemas/${key}_request` },
              {
                type: 'object',
                properties: { instances: { type: 'array', items: { $ref: `#/components/schemas/${key}_request` } } },
                required: ['instances'],
              },
            ],
          },
          examples: {
            one: { summary: 'one request', value: example },
            batch: { summary: 'several requests', value: { instances: [example] } },
          },
        },
      },
    },
    responses: {
      200: {
        description: 'predictions (Server-Timing header holds the per-stage durations)',
        content: {
          'application/json': {
            schema: {
              oneOf: [
                { $ref: `#/components/schemas/${key}_response` },
                { $ref: `#/components/schemas/${key}_batch_response` },
              ],
            },
          },
        },
      },
      ...BODY_ERRORS,
    },
  });
  for (const model of models) {
    const version = model.versions.get(model.defaultVersion)!;
    const request = requestSchemaOf(version);
    const responses = responseSchemaOf(version);
    const key = model.name.replace(/[^A-Za-z0-9_]/g, '_');
    const example = requestExample(version);
    schemas[`${key}_request`] = { ...request, example };
    schemas[`${key}_response`] = responses.single;
    schemas[`${key}_batch_response`] = responses.batch;
    const describe = model.config.description ? `: ${model.config.description}` : '';
    paths[`/models/${model.name}/predict`] = {
      post: predictOperation(
        model.name,
        key,
        example,
        `Predict with ${model.name} (version ${model.defaultVersion})${describe}`,
      ),
    };
    for (const v of [...model.versions.keys()].sort((a, b) => a - b)) {
      paths[`/models/${model.name}/versions/${v}/predict`] = {
        post: predictOperation(model.name, key, example, `Predict with ${model.name} version ${v}`),
      };
    }
    paths[`/models/${model.name}/sla`] = {
      get: operation(`Rolling p50/p95/p99 of ${model.name} against its sla.p99_ms budget`, OPERATIONS),
    };
    if (models.length === 1) {
      paths['/predict'] = {
        post: predictOperation(
          model.name,
          key,
          example,
          `Predict with ${model.name} (alias: served when exactly one model is)`,
        ),
      };
    }
  }
  const nameParam = {
    name: 'model_name',
    in: 'path',
    required: true,
    schema: { type: 'string', enum: models.map((m) => m.name) },
  };
  const versionParam = { name: 'model_version', in: 'path', required: true, schema: { type: 'string' } };
  const v2Infer = (summary: string): Operation =>
    operation(summary, V2, {
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['inputs'],
              properties: {
                id: { type: 'string' },
                parameters: { type: 'object' },
                inputs: { type: 'array', items: { type: 'object' } },
                outputs: { type: 'array', items: { type: 'object' } },
              },
            },
          },
        },
      },
      responses: { 200: { description: 'output tensors' }, ...BODY_ERRORS },
    });
  const admin = (summary: string, method: 'get' | 'post' = 'post'): Record<string, Operation> => ({
    [method]: operation(summary, REPOSITORY, { security: [{ adminToken: [] }], parameters: [nameParam] }),
  });
  Object.assign(paths, {
    '/v2': { get: operation('Server metadata and extensions', V2) },
    '/v2/health/live': { get: operation('Server liveness', V2) },
    '/v2/health/ready': { get: operation('Server readiness', V2) },
    '/v2/models/{model_name}': { get: operation('Model metadata', V2, { parameters: [nameParam] }) },
    '/v2/models/{model_name}/ready': { get: operation('Model readiness', V2, { parameters: [nameParam] }) },
    '/v2/models/{model_name}/infer': {
      post: {
        ...v2Infer('Inference with raw tensors (JSON, or the binary tensor extension)'),
        parameters: [nameParam],
      },
    },
    '/v2/models/{model_name}/versions/{model_version}': {
      get: operation('Model version metadata', V2, { parameters: [nameParam, versionParam] }),
    },
    '/v2/models/{model_name}/versions/{model_version}/ready': {
      get: operation('Model version readiness', V2, { parameters: [nameParam, versionParam] }),
    },
    '/v2/models/{model_name}/versions/{model_version}/infer': {
      post: { ...v2Infer('Inference on a given version'), parameters: [nameParam, versionParam] },
    },
    '/metrics': {
      get: operation(
        'Prometheus metrics: requests, per-stage durations, queue depth, batch sizes, cache, SLA',
        OPERATIONS,
      ),
    },
    '/v2/models/stats': { get: operation('Statistics of every model (Triton statistics extension)', OPERATIONS) },
    '/v2/models/{model_name}/stats': {
      get: operation('Statistics of a model', OPERATIONS, { parameters: [nameParam] }),
    },
    '/v2/models/{model_name}/versions/{model_version}/stats': {
      get: operation('Statistics of a model version', OPERATIONS, { parameters: [nameParam, versionParam] }),
    },
    '/v2/repository/index': {
      post: operation("List the repository's models and their state", REPOSITORY, { security: [{ adminToken: [] }] }),
    },
    '/v2/repository/models/{model_name}/status': admin("A model's load state", 'get'),
    '/v2/repository/models/{model_name}/load': admin('Load (or reload) a model'),
    '/v2/repository/models/{model_name}/unload': admin('Unload a model'),
    '/v2/repository/models/{model_name}/promote': admin('Promote a registry version (servers following the registry)'),
    '/v2/repository/models/{model_name}/traffic': admin('Set canary and shadow traffic'),
  });
  // Whatever else the server registered (a route added later) is documented at least by its method and path.
  for (const route of routes) {
    if (route.hidden || route.url.startsWith('/docs') || route.url === '/openapi.json' || route.url === '*') continue;
    const path = route.url.replace(
      /:([A-Za-z0-9_]+)/g,
      (_m, p: string) => `{${p === 'name' ? 'model_name' : p === 'version' ? 'model_version' : p}}`,
    );
    if (path.startsWith('/models/{model_name}/') && models.length > 0) continue; // listed per model above
    for (const method of [route.method].flat().map((m) => m.toLowerCase())) {
      if (method === 'head' || method === 'options') continue;
      const entry = (paths[path] ??= {});
      if (entry[method]) continue;
      const parameters = [...path.matchAll(/\{([^}]+)\}/g)].map((m) =>
        m[1] === 'model_name' ? nameParam : { name: m[1], in: 'path', required: true, schema: { type: 'string' } },
      );
      entry[method] = operation(
        `${method.toUpperCase()} ${path}`,
        path.startsWith('/v2/repository') ? REPOSITORY : path.startsWith('/v2') ? V2 : OPERATIONS,
        parameters.length ? { parameters } : {},
      );
    }
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'Caliper model server',
      version: serverVersion,
      description:
        'Typed /predict endpoints generated from each model.yaml, the Open Inference Protocol v2, operations and model control.',
    },
    paths,
    components: {
      schemas,
      securitySchemes: {
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'the admin token (--admin-token-file or CALIPER_ADMIN_TOKEN)',
        },
      },
    },
  };
}
