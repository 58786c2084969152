import type { ConfigReader } from '../config/config-reader.ts';
import type { InputFieldSpec } from '../config/input-field.ts';
import { EntityKeyTemplate } from './entity-key.ts';

/** model.yaml's `features` section: per-entity values looked up before preprocess and joined to each request row. */

export type FeatureValueType = 'number' | 'integer' | 'string' | 'boolean';
export type FeatureValue = number | string | boolean;

export interface FeatureFieldSpec {
  name: string;
  type: FeatureValueType;
  /** Used when the entity is unknown (on_missing: defaults) or the store is slow or down. */
  default: FeatureValue;
}

export type FeatureStoreSpec =
  | { kind: 'memory' /** CSV or Parquet file, relative to the model folder. */; source: string }
  | { kind: 'redis'; url: string };

export interface FeaturesSpec {
  store: FeatureStoreSpec;
  key: EntityKeyTemplate;
  fields: FeatureFieldSpec[];
  /** How long the lookup may take before defaults are used and the response is marked degraded. */
  timeoutMs: number;
  /** What an unknown entity (or a request without the key fields) gets: the defaults, or a 404. */
  onMissing: 'defaults' | 'error';
}

const VALUE_TYPES: readonly FeatureValueType[] = ['number', 'integer', 'string', 'boolean'];

function parseField(r: ConfigReader, name: string, raw: unknown, path: string): FeatureFieldSpec {
  const o = r.object(raw, path);
  r.onlyKeys(o, path, ['type', 'default']);
  const type = r.oneOf(o.type, `${path}.type`, VALUE_TYPES);
  if (o.default === undefined)
    r.fail(`${path}.default`, `a default ${type} (used for unknown entities and when the store is down)`);
  let value: FeatureValue;
  switch (type) {
    case 'number':
      value = r.number(o.default, `${path}.default`);
      break;
    case 'integer':
      value = r.number(o.default, `${path}.default`, { integer: true });
      break;
    case 'boolean':
      value = r.boolean(o.default, `${path}.default`);
      break;
    case 'string':
      if (typeof o.default !== 'string') r.fail(`${path}.default`, 'a string', o.default);
      value = o.default as string;
      break;
  }
  return { name, type, default: value };
}

/** Validates the `features` section; `inputs` are the request fields the key template may name. */
export function parseFeatures(r: ConfigReader, raw: unknown, inputs: readonly InputFieldSpec[]): FeaturesSpec {
  const o = r.object(raw, 'features');
  r.onlyKeys(o, 'features', ['store', 'source', 'url', 'key', 'fields', 'timeout_ms', 'on_missing']);
  const kind = o.store === undefined ? 'memory' : r.oneOf(o.store, 'features.store', ['memory', 'redis'] as const);
  let store: FeatureStoreSpec;
  if (kind === 'redis') {
    if (o.source !== undefined)
      r.fail('features.source', 'no source with store: redis (load the file with `caliper features load`)', o.source);
    const url = r.string(o.url, 'features.url');
    if (!/^rediss?:\/\//.test(url)) r.fail('features.url', 'a redis:// or rediss:// URL', url);
    store = { kind, url };
  } else {
    if (o.url !== undefined) r.fail('features.url', 'no url with store: memory (set store: redis to use Redis)', o.url);
    const source = r.string(o.source, 'features.source');
    if (!/\.(csv|parquet)$/i.test(source))
      r.fail('features.source', 'a .csv or .parquet file (relative to the model folder)', source);
    store = { kind, source };
  }

  const key = EntityKeyTemplate.parse(r.string(o.key, 'features.key'), (message, got) =>
    r.fail('features.key', message, got),
  );
  for (const field of key.fields) {
    const input = inputs.find((i) => i.name === field);
    if (!input)
      r.fail(
        'features.key',
        `placeholders naming fields declared under inputs (${inputs.map((i) => i.name).join(', ')})`,
        `{${field}}`,
      );
    if (input.type === 'array')
      r.fail('features.key', `a placeholder naming a scalar field (inputs.${field} is an array)`, `{${field}}`);
  }

  const fieldsRaw = r.object(o.fields, 'features.fields');
  const fields = Object.entries(fieldsRaw).map(([name, value]) => {
    const path = `features.fields.${name}`;
    if (inputs.some((i) => i.name === name))
      r.fail(path, `a name that is not also a request field (inputs.${name} exists)`, name);
    return parseField(r, name, value, path);
  });
  if (fields.length === 0) r.fail('features.fields', 'at least one feature field');

  return {
    store,
    key,
    fields,
    timeoutMs:
      o.timeout_ms === undefined ? 20 : r.number(o.timeout_ms, 'features.timeout_ms', { exclusiveMin: 0, max: 60_000 }),
    onMissing:
      o.on_missing === undefined
        ? 'defaults'
        : r.oneOf(o.on_missing, 'features.on_missing', ['defaults', 'error'] as const),
  };
}

/** The feature fields as request-row fields, so preprocess columns can name them like inputs. */
export function featureInputs(spec: FeaturesSpec | undefined): InputFieldSpec[] {
  if (!spec) return [];
  return spec.fields.map((f) => ({ name: f.name, type: f.type, required: false, default: f.default }));
}
