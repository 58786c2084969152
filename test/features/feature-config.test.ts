import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';
import { EntityKeyTemplate } from '../../src/features/entity-key.ts';

const base = `
name: m
inputs:
  amount: { type: number, minimum: 0 }
  user_id: { type: string, required: false }
features:
  source: users.csv
  key: "user:{user_id}"
  fields:
    txn_count: { type: integer, default: 0 }
    avg_amount: { type: number, default: 12.5 }
preprocess:
  tensor: x
  columns:
    - { log1p: amount }
    - { log1p: txn_count }
    - { identity: avg_amount }
postprocess:
  p: { output: y, index: 0 }
`;

const parse = (text: string) => parseModelConfigText(text, '/models/m/model.yaml', '/models/m');
const replaced = (from: string, to: string) => {
  if (!base.includes(from)) throw new Error(`test setup: ${from} not in the base config`);
  return parse(base.replace(from, to));
};

describe('model.yaml features section', () => {
  it('parses the store, key template, typed fields with defaults, timeout and policy; preprocess may name feature fields', () => {
    const config = parse(base);
    const features = config.features!;
    expect(features.store).toEqual({ kind: 'memory', source: 'users.csv' });
    expect(features.key.template).toBe('user:{user_id}');
    expect(features.key.fields).toEqual(['user_id']);
    expect(features.fields).toEqual([
      { name: 'txn_count', type: 'integer', default: 0 },
      { name: 'avg_amount', type: 'number', default: 12.5 },
    ]);
    expect(features.timeoutMs).toBe(20);
    expect(features.onMissing).toBe('defaults');
    expect(config.tensors[0]!.columns.map((c) => c.field)).toEqual(['amount', 'txn_count', 'avg_amount']);
  });

  it('parses a redis store', () => {
    const config = replaced(
      '  source: users.csv\n',
      '  store: redis\n  url: redis://10.0.0.5:6380/2\n  timeout_ms: 5\n  on_missing: error\n',
    );
    expect(config.features!.store).toEqual({ kind: 'redis', url: 'redis://10.0.0.5:6380/2' });
    expect(config.features!.timeoutMs).toBe(5);
    expect(config.features!.onMissing).toBe('error');
  });

  const errors: [string, () => unknown, string][] = [
    [
      'unknown key',
      () => replaced('  source: users.csv\n', '  source: users.csv\n  ttl: 3\n'),
      'features.ttl: unknown field (expected one of: store, source, url, key, fields, timeout_ms, on_missing)',
    ],
    [
      'bad store',
      () => replaced('  source: users.csv\n', '  store: dynamo\n'),
      'features.store: expected one of memory, redis, got "dynamo"',
    ],
    [
      'redis without url',
      () => replaced('  source: users.csv\n', '  store: redis\n'),
      'features.url: expected a non-empty string, got nothing',
    ],
    [
      'redis with a non-redis url',
      () => replaced('  source: users.csv\n', '  store: redis\n  url: http://x\n'),
      'features.url: expected a redis:// or rediss:// URL, got "http://x"',
    ],
    [
      'memory with a url',
      () => replaced('  source: users.csv\n', '  source: users.csv\n  url: redis://x\n'),
      'features.url: expected no url with store: memory',
    ],
    [
      'memory source of another format',
      () => replaced('source: users.csv', 'source: users.json'),
      'features.source: expected a .csv or .parquet file',
    ],
    [
      'key naming an undeclared field',
      () => replaced('user:{user_id}', 'user:{uid}'),
      'features.key: expected placeholders naming fields declared under inputs (amount, user_id), got "{uid}"',
    ],
    [
      'key without placeholder',
      () => replaced('user:{user_id}', 'user'),
      'features.key: expected a template with at least one {field} placeholder',
    ],
    [
      'unclosed placeholder',
      () => replaced('user:{user_id}', 'user:{user_id'),
      'features.key: expected a template whose "{" is closed by "}"',
    ],
    [
      'field without default',
      () => replaced('{ type: integer, default: 0 }', '{ type: integer }'),
      'features.fields.txn_count.default: expected a default integer (used for unknown entities and when the store is down)',
    ],
    [
      'default of the wrong type',
      () => replaced('{ type: number, default: 12.5 }', '{ type: number, default: high }'),
      'features.fields.avg_amount.default: expected a number, got "high"',
    ],
    [
      'bad field type',
      () => replaced('{ type: integer, default: 0 }', '{ type: float, default: 0 }'),
      'features.fields.txn_count.type: expected one of number, integer, string, boolean, got "float"',
    ],
    [
      'field shadowing a request field',
      () =>
        replaced(
          '    txn_count: { type: integer, default: 0 }\n',
          '    amount: { type: number, default: 0 }\n    txn_count: { type: integer, default: 0 }\n',
        ),
      'features.fields.amount: expected a name that is not also a request field',
    ],
    [
      'non-positive timeout',
      () => replaced('  source: users.csv\n', '  source: users.csv\n  timeout_ms: 0\n'),
      'features.timeout_ms: expected a number > 0, got number 0',
    ],
    [
      'bad policy',
      () => replaced('  source: users.csv\n', '  source: users.csv\n  on_missing: ignore\n'),
      'features.on_missing: expected one of defaults, error, got "ignore"',
    ],
    [
      'preprocess naming a field that is neither',
      () => replaced('{ identity: avg_amount }', '{ identity: avg_amt }'),
      'preprocess.columns[2].identity: expected the name of a field declared under inputs (amount, user_id, txn_count, avg_amount), got "avg_amt"',
    ],
  ];
  for (const [name, run, message] of errors) {
    it(`rejects: ${name}`, () => {
      expect(run).toThrow(message);
      expect(run).toThrow('/models/m/model.yaml: ');
    });
  }

  it('a config without features keeps preprocess limited to inputs', () => {
    const without = base.replace(/features:[\s\S]*?preprocess:/, 'preprocess:');
    expect(() => parse(without)).toThrow(
      'preprocess.columns[1].log1p: expected the name of a field declared under inputs (amount, user_id), got "txn_count"',
    );
  });
});

describe('entity key templates', () => {
  const fail = (expected: string, got: string): never => {
    throw new Error(`${expected} / ${got}`);
  };

  it('builds keys from several fields and literal text', () => {
    const key = EntityKeyTemplate.parse('acct:{bank}/{account}:v1', fail);
    expect(key.fields).toEqual(['bank', 'account']);
    expect(key.build({ bank: 'b1', account: 42 })).toBe('acct:b1/42:v1');
    expect(key.build({ bank: 'b1', account: 42n })).toBe('acct:b1/42:v1');
  });

  it('gives no key when a placeholder field is absent, null or empty', () => {
    const key = EntityKeyTemplate.parse('user:{user_id}', fail);
    expect(key.build({})).toBeUndefined();
    expect(key.build({ user_id: null })).toBeUndefined();
    expect(key.build({ user_id: '' })).toBeUndefined();
    expect(key.build({ user_id: '007' })).toBe('user:007');
  });

  it('refuses a stray closing brace and an empty placeholder', () => {
    expect(() => EntityKeyTemplate.parse('user:}x', fail)).toThrow('closes a "{field}" placeholder');
    expect(() => EntityKeyTemplate.parse('user:{}', fail)).toThrow('placeholders holding a field name');
  });
});
