import type { InputFieldSpec } from '../config/model-config.ts';
import { mulberry32 } from '../system/seeded-random.ts';
import type { RequestData } from './request-data.ts';

/**
 * Synthesized /predict requests: random valid values for every field of a model's request schema, as
 * perf_analyzer does when it is given no input data. Many distinct documents, so a benchmark measures the model
 * and not the response cache; seeded, so two runs send the same requests.
 */

/** The part of a JSON Schema (draft 7 / OpenAPI 3.0 subset) that describes one /predict request object. */
export interface RequestObjectSchema {
  type?: unknown;
  properties?: Record<string, FieldSchema>;
  required?: string[];
}

export interface FieldSchema {
  type?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  items?: { type?: unknown; minimum?: number; maximum?: number };
  minItems?: number;
  maxItems?: number;
}

export interface SynthesisOptions {
  /** Number of distinct request documents (default 1000). */
  count?: number;
  /** PRNG seed (default 1). */
  seed?: number;
}

/** A value in [min, max]; without a maximum, an exponential spread above the minimum (scale 100), as amounts and durations are. */
function numberIn(random: () => number, min: number | undefined, max: number | undefined, integer: boolean): number {
  const low = min ?? (max !== undefined ? Math.min(0, max - 100) : 0);
  const value = max !== undefined ? low + random() * (max - low) : low - 100 * Math.log(1 - random());
  if (!integer) return Math.round(value * 1000) / 1000;
  const lowInt = Math.ceil(low);
  const highInt = max !== undefined ? Math.floor(max) : Number.MAX_SAFE_INTEGER;
  return Math.min(highInt, Math.max(lowInt, Math.round(value)));
}

function fieldValue(random: () => number, name: string, field: FieldSchema): unknown {
  if (Array.isArray(field.enum) && field.enum.length > 0) return field.enum[Math.floor(random() * field.enum.length)];
  switch (field.type) {
    case 'number':
      return numberIn(random, field.minimum, field.maximum, false);
    case 'integer':
      return numberIn(random, field.minimum, field.maximum, true);
    case 'boolean':
      return random() < 0.5;
    case 'string':
      return `${name}-${Math.floor(random() * 1e6)}`;
    case 'array': {
      const min = field.minItems ?? 1;
      const max = field.maxItems ?? Math.max(min, 8);
      const length = min + Math.floor(random() * (max - min + 1));
      const items = field.items ?? {};
      return Array.from({ length }, () => numberIn(random, items.minimum, items.maximum, items.type === 'integer'));
    }
    default:
      throw new Error(`field ${name}: cannot synthesize values of type ${JSON.stringify(field.type)}`);
  }
}

/**
 * Builds `count` request objects from the schema: every required field, and each optional field half of the time.
 * Throws when a field's type is not one /predict accepts (number, integer, string, boolean, array).
 */
export function synthesizeRequests(
  schema: RequestObjectSchema,
  source: string,
  options: SynthesisOptions = {},
): RequestData {
  const random = mulberry32(options.seed ?? 1);
  const count = options.count ?? 1000;
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {});
  if (fields.length === 0) throw new Error(`${source}: the request schema has no fields to synthesize`);
  const documents = Array.from({ length: count }, () => {
    const doc: Record<string, unknown> = {};
    for (const [name, field] of fields) {
      if (required.has(name) || random() < 0.5) doc[name] = fieldValue(random, name, field);
    }
    return doc;
  });
  return { source: `${source} (${count} synthesized requests, seed ${options.seed ?? 1})`, documents };
}

/**
 * The request schema of a served model, read from the server's OpenAPI document (GET /openapi.json):
 * the schema of POST /models/{name}/predict's single-object form. Resolves undefined when the server does not
 * describe that route.
 */
export function requestSchemaFromOpenApi(document: unknown, model: string): RequestObjectSchema | undefined {
  const doc = document as {
    paths?: Record<string, { post?: unknown }>;
    components?: { schemas?: Record<string, unknown> };
  };
  const post = doc.paths?.[`/models/${model}/predict`]?.post as
    | { requestBody?: { content?: Record<string, { schema?: { oneOf?: { $ref?: string }[]; $ref?: string } }> } }
    | undefined;
  const bodySchema = post?.requestBody?.content?.['application/json']?.schema;
  const ref = bodySchema?.oneOf?.find((s) => typeof s.$ref === 'string')?.$ref ?? bodySchema?.$ref;
  if (!ref?.startsWith('#/components/schemas/')) return undefined;
  return doc.components?.schemas?.[ref.slice('#/components/schemas/'.length)] as RequestObjectSchema | undefined;
}

/** The request schema of a model folder's served version (its model.yaml inputs). */
export function requestSchemaOfInputs(inputs: readonly InputFieldSpec[]): RequestObjectSchema {
  const properties: Record<string, FieldSchema> = {};
  for (const spec of inputs) {
    const field: FieldSchema = { type: spec.type };
    if (spec.enum) field.enum = spec.enum;
    if (spec.minimum !== undefined) field.minimum = spec.minimum;
    if (spec.maximum !== undefined) field.maximum = spec.maximum;
    if (spec.type === 'array') {
      field.items = {
        type: spec.items ?? 'number',
        ...(spec.minimum !== undefined ? { minimum: spec.minimum } : {}),
        ...(spec.maximum !== undefined ? { maximum: spec.maximum } : {}),
      };
      if (spec.length !== undefined) {
        field.minItems = spec.length;
        field.maxItems = spec.length;
      }
      if (spec.minLength !== undefined) field.minItems = spec.minLength;
      if (spec.maxLength !== undefined) field.maxItems = spec.maxLength;
    }
    properties[spec.name] = field;
  }
  return { type: 'object', properties, required: inputs.filter((i) => i.required).map((i) => i.name) };
}

/** One input of v2 model metadata (GET /v2/models/{name}): name, datatype and shape with -1 for dynamic dims. */
export interface V2TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

/**
 * Open Inference Protocol requests with random tensors for every input of the model's v2 metadata, for a server
 * known only by URL: dynamic dimensions are 1 (the first) or 8 (others), as perf_analyzer's defaults.
 */
export function synthesizeV2Requests(
  inputs: readonly V2TensorMetadata[],
  source: string,
  options: SynthesisOptions = {},
): RequestData {
  const random = mulberry32(options.seed ?? 1);
  const count = options.count ?? 1000;
  const element = (datatype: string): number | boolean | string => {
    if (datatype === 'BOOL') return random() < 0.5;
    if (datatype === 'BYTES') return `s${Math.floor(random() * 1e6)}`;
    if (datatype.startsWith('FP')) return Math.round((random() * 2 - 1) * 1000) / 1000;
    if (datatype.startsWith('UINT')) return Math.floor(random() * 100);
    if (datatype.startsWith('INT')) return Math.floor(random() * 200) - 100;
    throw new Error(`${source}: input datatype ${datatype} cannot be synthesized`);
  };
  const documents = Array.from({ length: count }, () => ({
    inputs: inputs.map((input) => {
      const shape = input.shape.map((d, i) => (d >= 0 ? d : i === 0 ? 1 : 8));
      const size = shape.reduce((n, d) => n * d, 1);
      return {
        name: input.name,
        datatype: input.datatype,
        shape,
        data: Array.from({ length: size }, () => element(input.datatype)),
      };
    }),
  }));
  return { source: `${source} (${count} synthesized tensor requests, seed ${options.seed ?? 1})`, documents };
}
