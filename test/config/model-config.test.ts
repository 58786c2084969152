import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';

const valid = `
name: m
inputs:
  amount: { type: number, minimum: 0 }
  kind: { type: string, enum: [a, b] }
preprocess:
  tensor: x
  columns:
    - { log1p: amount }
    - { one_hot: kind }
postprocess:
  p: { output: y, index: 0 }
`;

const parse = (text: string) => parseModelConfigText(text, '/models/m/model.yaml', '/models/m');
const replaced = (from: string, to: string) => parse(valid.replace(from, to));

describe('model.yaml validation', () => {
  it('parses a valid config with defaults', () => {
    const config = parse(valid);
    expect(config.name).toBe('m');
    expect(config.tensors[0]).toMatchObject({ name: 'x', dtype: 'float32' });
    expect(config.tensors[0]!.columns[1]).toEqual({
      kind: 'one_hot',
      field: 'kind',
      categories: ['a', 'b'],
      unknown: 'error',
    });
    expect(config.unknownFields).toBe('reject');
    expect(config.instances.count).toBe(1);
    expect(config.versionPolicy).toEqual({ kind: 'latest' });
  });

  it('batching cuts to the preferred size unless cut_to_preferred is false', () => {
    const cut = parse(`${valid}batching: { max_batch_size: 8, preferred_batch_sizes: [4] }\n`).batching;
    expect(cut.cutToPreferred).toBe(true);
    const taken = parse(`${valid}batching: { preferred_batch_sizes: [4], cut_to_preferred: false }\n`).batching;
    expect(taken.cutToPreferred).toBe(false);
    expect(parse(`${valid}batching: { cut_to_preferred: true }\n`).batching.cutToPreferred).toBe(true);
  });

  const errors: [string, () => unknown, string][] = [
    ['a YAML syntax error names the line', () => parse('name: m\ninputs: [a\n'), '/models/m/model.yaml:'],
    [
      'missing name',
      () => replaced('name: m', ''),
      '/models/m/model.yaml: name: expected a non-empty string, got nothing',
    ],
    [
      'bad field type',
      () => replaced('type: number', 'type: float'),
      'inputs.amount.type: expected one of number, integer, string, boolean, array, got "float"',
    ],
    ['unknown top-level key', () => parse(`${valid}\nbatchin: {}\n`), 'batchin: unknown field (expected one of:'],
    [
      'column naming an undeclared field',
      () => replaced('{ log1p: amount }', '{ log1p: amt }'),
      'preprocess.columns[0].log1p: expected the name of a field declared under inputs (amount, kind), got "amt"',
    ],
    [
      'one_hot of a number field (it matches text: every request would be an unknown category)',
      () => replaced('{ one_hot: kind }', '{ one_hot: amount, categories: ["1", "2"] }'),
      'preprocess.columns[1].one_hot: expected a string field (inputs.amount is a number: one_hot matches text; use a numeric transform), got "amount"',
    ],
    [
      'lookup of an array field',
      () =>
        parse(
          valid
            .replace('kind: { type: string', 'ids: { type: array, items: integer, length: 2 }\n  kind: { type: string')
            .replace('{ one_hot: kind }', '{ lookup: ids, table: { a: 1 } }'),
        ),
      'preprocess.columns[1].lookup: expected a string field (inputs.ids is an array: lookup matches text; use a numeric transform), got "ids"',
    ],
    [
      'one_hot of a boolean field',
      () =>
        parse(
          valid
            .replace('kind: { type: string, enum: [a, b] }', 'flag: { type: boolean }')
            .replace('{ one_hot: kind }', '{ one_hot: flag, categories: ["true", "false"] }'),
        ),
      'preprocess.columns[1].one_hot: expected a string field (inputs.flag is a boolean: one_hot matches text; use a numeric transform), got "flag"',
    ],
    [
      'numeric transform of a string field',
      () => replaced('{ log1p: amount }', '{ log1p: kind }'),
      'preprocess.columns[0].log1p: expected a numeric field (inputs.kind is a string: use one_hot or lookup)',
    ],
    [
      'two transforms in one column',
      () => replaced('{ log1p: amount }', '{ log1p: amount, identity: amount }'),
      'preprocess.columns[0]: expected exactly one transform',
    ],
    [
      'standardize without std',
      () => replaced('{ log1p: amount }', '{ standardize: amount, mean: 1 }'),
      'preprocess.columns[0].std: expected a number, got nothing',
    ],
    [
      'standardize with zero std',
      () => replaced('{ log1p: amount }', '{ standardize: amount, mean: 1, std: 0 }'),
      'preprocess.columns[0].std: expected a number > 0, got number 0',
    ],
    [
      'min_max with max <= min',
      () => replaced('{ log1p: amount }', '{ min_max: amount, min: 5, max: 5 }'),
      'preprocess.columns[0].max: expected a number greater than min (5)',
    ],
    [
      'one_hot unknown policy',
      () => replaced('{ one_hot: kind }', '{ one_hot: kind, unknown: ignore }'),
      'preprocess.columns[1].unknown: expected one of error, zeros, got "ignore"',
    ],
    [
      'postprocess with neither output nor of',
      () => replaced('{ output: y, index: 0 }', '{ index: 0 }'),
      'postprocess.p: expected exactly one of output',
    ],
    [
      'postprocess of a later field',
      () => replaced('p: { output: y, index: 0 }', 'q: { of: p, threshold: 1 }\n  p: { output: y }'),
      'postprocess.q.of: expected a postprocess field declared above',
    ],
    [
      'instances count 0',
      () => parse(`${valid}instances: { count: 0 }\n`),
      'instances.count: expected an integer >= 1, got number 0',
    ],
    [
      'preferred batch size above the max',
      () => parse(`${valid}batching: { max_batch_size: 8, preferred_batch_sizes: [16] }\n`),
      'batching.preferred_batch_sizes[0]: expected a size <= max_batch_size (8), got number 16',
    ],
    [
      'cut_to_preferred not a boolean',
      () => parse(`${valid}batching: { max_batch_size: 8, preferred_batch_sizes: [4], cut_to_preferred: "no" }\n`),
      'batching.cut_to_preferred: expected true or false, got "no"',
    ],
    [
      'redis cache without URL',
      () => parse(`${valid}cache: { backend: redis }\n`),
      'cache.redis_url: expected a redis:// URL when backend is redis',
    ],
    [
      'bad graph level',
      () => parse(`${valid}optimization: { graph_level: max }\n`),
      'optimization.graph_level: expected one of disabled, basic, extended, all, got "max"',
    ],
    ['name unusable in URLs', () => replaced('name: m', 'name: "my model"'), 'name: expected letters, digits'],
  ];
  for (const [name, run, message] of errors) {
    it(name, () => {
      expect(run).toThrow(message);
    });
  }

  it('errors carry the config error code', () => {
    try {
      replaced('type: number', 'type: float');
      expect.unreachable();
    } catch (error) {
      expect((error as { code: string }).code).toBe('CALIPER_CONFIG_INVALID');
    }
  });
});
