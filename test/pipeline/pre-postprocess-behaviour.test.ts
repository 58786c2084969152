import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';
import type { CaliperError } from '../../src/errors.ts';
import { nonFiniteAsNull, Postprocessor } from '../../src/pipeline/postprocess.ts';
import { padValuesOf, Preprocessor, scalarTransform } from '../../src/pipeline/preprocess.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';

/**
 * What a model.yaml author relies on from the declared transforms, beyond transforms.test.ts: each scalar step at and
 * past its edges, unknown categories, dtype ranges and rounding, padding with masks, and each postprocess operation on
 * the awkward values (NaN, ±Infinity, ties, short label lists, outputs that are not one row per instance).
 */

const config = (body: string) => parseModelConfigText(body, 'model.yaml', '/tmp');
const noPrefix = (): string => '';
const at = (i: number): string => `instances[${i}].`;

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected an error');
}

const values = (t: { data: ArrayLike<unknown> } | undefined): unknown[] => Array.from(t!.data);

describe('scalar steps', () => {
  it('computes each step, and chains them in the order written', () => {
    expect(scalarTransform([{ op: 'standardize', mean: 10, std: 4 }])(18)).toBe(2);
    expect(scalarTransform([{ op: 'min_max', min: 10, max: 30 }])(15)).toBe(0.25);
    expect(scalarTransform([{ op: 'divide', by: 4 }])(2)).toBe(0.5);
    expect(scalarTransform([{ op: 'multiply', by: 4 }])(2)).toBe(8);
    expect(scalarTransform([{ op: 'identity' }])(-3)).toBe(-3);
    expect(scalarTransform([{ op: 'log1p' }])(Math.E - 1)).toBeCloseTo(1, 15);
    const chain = scalarTransform([
      { op: 'multiply', by: 2 },
      { op: 'standardize', mean: 1, std: 2 },
      { op: 'divide', by: 10 },
    ]);
    expect(chain(3)).toBe(0.25);
  });

  it('clips at both ends and passes values between', () => {
    const clip = scalarTransform([{ op: 'clip', min: -1, max: 1 }]);
    expect([-5, -1, 0.5, 1, 7].map(clip)).toEqual([-1, -1, 0.5, 1, 1]);
  });
});

describe('columns', () => {
  const c = config(`
name: t
inputs:
  a: { type: number }
  flag: { type: boolean }
  c: { type: string }
  v: { type: array, length: 3 }
preprocess:
  tensor: in
  dtype: float64
  columns:
    - { identity: flag }
    - { one_hot: c, categories: [p, q, r], unknown: zeros }
    - { lookup: c, table: { p: 5, q: 6 }, unknown: -9 }
    - { clip: v, min: 0, max: 2 }
    - { standardize: a, mean: 1, std: 2 }
postprocess: { out: { output: o } }
`);
  // Built in each test, so each test's coverage includes the constructor (see transforms.test.ts).
  const pre = (): Preprocessor => new Preprocessor(c);

  it('writes booleans as 1 and 0, categories one-hot, lookups, and every element of an array', () => {
    const { in: tensor } = pre().run(
      [
        { a: 5, flag: true, c: 'q', v: [-1, 1, 3] },
        { a: 1, flag: false, c: 'zz', v: [0, 2, 1.5] },
      ],
      noPrefix,
    );
    expect(tensor!.type).toBe('float64');
    expect(tensor!.dims).toEqual([2, 9]);
    expect(values(tensor)).toEqual([1, 0, 1, 0, 6, 0, 1, 2, 2, 0, 0, 0, 0, -9, 0, 2, 1.5, 0]);
  });

  it('treats a lookup key that is not a string, or an inherited property name, as unknown', () => {
    const strict = new Preprocessor(
      config(`
name: t
inputs: { c: { type: string } }
preprocess: { tensor: in, columns: [{ lookup: c, table: { p: 5, q: 0 } }] }
postprocess: { out: { output: o } }
`),
    );
    expect(values(strict.run([{ c: 'q' }], noPrefix).in)).toEqual([0]);
    expect(message(() => strict.run([{ c: 'p' }, { c: 'constructor' }], at))).toBe(
      'CALIPER_INVALID_INPUT: instances[1].c: unknown category "constructor" (expected one of p, q)',
    );
    expect(message(() => strict.run([{ c: 7 }], at))).toBe(
      'CALIPER_INVALID_INPUT: instances[0].c: unknown category number 7 (expected one of p, q)',
    );
  });

  it('clears the one-hot block of a reused buffer position: only the category present is 1', () => {
    const { in: tensor } = pre().run(
      [
        { a: 0, flag: false, c: 'r', v: [0, 0, 0] },
        { a: 0, flag: false, c: 'p', v: [0, 0, 0] },
      ],
      noPrefix,
    );
    expect(values(tensor).slice(1, 4)).toEqual([0, 0, 1]);
    expect(values(tensor).slice(10, 13)).toEqual([1, 0, 0]);
  });

  it('refuses an array column without a fixed length, and a shape whose product is not the width', () => {
    expect(
      message(
        () =>
          new Preprocessor(
            config(`
name: t
inputs: { v: { type: array, min_length: 1, max_length: 4 }, a: { type: number } }
preprocess: { tensor: in, columns: [{ identity: v }, { identity: a }] }
postprocess: { out: { output: o } }
`),
          ),
      ),
    ).toContain('inputs.v.length: expected the array length (needed to size the preprocess tensor)');
    expect(
      message(
        () =>
          new Preprocessor(
            config(`
name: t
inputs: { v: { type: array, length: 4 } }
preprocess: { tensor: in, shape: [3, 2], columns: [{ identity: v }] }
postprocess: { out: { output: o } }
`),
          ),
      ),
    ).toContain('preprocess in.shape: expected dimensions whose product is the column width 4, got [3, 2]');
  });
});

describe('dtypes', () => {
  const tensorOf = (dtype: string, rows: number[], extra = '') =>
    new Preprocessor(
      config(`
name: t
inputs: { a: { type: number }${extra} }
preprocess: { tensor: in, dtype: ${dtype}, columns: [{ identity: a }] }
postprocess: { out: { output: o } }
`),
    ).run(
      rows.map((a) => ({ a })),
      at,
    ).in!;

  it('rounds to integer dtypes, and accepts values up to each end of the range', () => {
    expect(tensorOf('int8', [-128, 126.6, -0.4])).toEqual({
      type: 'int8',
      dims: [3, 1],
      data: Int8Array.from([-128, 127, -0]),
    });
    expect(values(tensorOf('uint8', [0, 255, 254.5]))).toEqual([0, 255, 255]);
    expect(values(tensorOf('int16', [-32768, 32767]))).toEqual([-32768, 32767]);
    expect(values(tensorOf('uint16', [65535]))).toEqual([65535]);
    expect(values(tensorOf('int32', [-2147483648, 2147483647]))).toEqual([-2147483648, 2147483647]);
    expect(values(tensorOf('uint32', [4294967295]))).toEqual([4294967295]);
    expect(values(tensorOf('int64', [-3, 2 ** 53 - 1]))).toEqual([-3n, 2n ** 53n - 1n]);
    expect(values(tensorOf('uint64', [7.5]))).toEqual([8n]);
    expect(values(tensorOf('bool', [0, 2, -1]))).toEqual([0, 1, 1]);
    expect(tensorOf('float16', [1, -2]).data).toEqual(Uint16Array.from([0x3c00, 0xc000]));
  });

  it('refuses a value that does not fit, naming the row, field and range, never wrapping it', () => {
    expect(message(() => tensorOf('uint8', [1, 300]))).toBe(
      'CALIPER_INVALID_INPUT: instances[1].a: 300 does not fit preprocess tensor in (uint8: 0 to 255, after rounding)',
    );
    expect(message(() => tensorOf('uint8', [-0.6]))).toContain('-0.6 does not fit');
    expect(message(() => tensorOf('int8', [127.5]))).toContain('(int8: -128 to 127, after rounding)');
    expect(message(() => tensorOf('int8', [-128.6]))).toContain('-128.6 does not fit');
    expect(message(() => tensorOf('float16', [70000]))).toBe(
      'CALIPER_INVALID_INPUT: instances[0].a: 70000 does not fit preprocess tensor in (float16: -65504 to 65504)',
    );
    expect(values(tensorOf('float16', [65504]))).toEqual([0x7bff]);
  });

  it('passes strings through a string tensor and checks them', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { s: { type: string } }
preprocess: { tensor: text, dtype: string, shape: [], columns: [{ identity: s }] }
postprocess: { out: { output: o } }
`),
    );
    expect(pre.run([{ s: 'héllo' }, { s: '' }], noPrefix).text).toEqual({
      type: 'string',
      dims: [2],
      data: ['héllo', ''],
    });
  });
});

describe('padding', () => {
  const padded = (extra: string, dtype = 'float32') =>
    new Preprocessor(
      config(`
name: t
inputs: { ids: { type: array, items: integer, min_length: 1, max_length: 4 } }
preprocess: { tensor: ids, dtype: ${dtype}, ${extra} columns: [{ identity: ids }] }
postprocess: { out: { output: o } }
`),
    );

  it('pads each row to the longest of the batch with the pad value, and marks real positions in the mask', () => {
    const pre = padded('pad: -1, attention_mask: mask,', 'int64');
    const out = pre.run([{ ids: [5, 6, 7] }, { ids: [8] }], noPrefix);
    expect(out.ids).toEqual({ type: 'int64', dims: [2, 3], data: BigInt64Array.from([5n, 6n, 7n, 8n, -1n, -1n]) });
    expect(out.mask).toEqual({ type: 'int64', dims: [2, 3], data: BigInt64Array.from([1n, 1n, 1n, 1n, 0n, 0n]) });
    expect(padValuesOf(pre.builders.map((b) => b.spec))).toEqual(
      new Map([
        ['ids', -1],
        ['mask', 0],
      ]),
    );
  });

  it('pads to pad_to when given, and no tensor of that kind is padded again by the batcher', () => {
    const pre = padded('pad: 0, pad_to: 4,');
    const out = pre.run([{ ids: [1, 2] }], noPrefix);
    expect(out.ids!.dims).toEqual([1, 4]);
    expect(values(out.ids)).toEqual([1, 2, 0, 0]);
    expect(out.mask).toBeUndefined();
    expect(padValuesOf(pre.builders.map((b) => b.spec))).toEqual(new Map());
  });

  it('writes float64 and float32 padded tensors in their own type', () => {
    expect(padded('pad: 0,', 'float64').run([{ ids: [3] }], noPrefix).ids!.data).toEqual(Float64Array.from([3]));
    const f32 = padded('pad: 0, attention_mask: m,').run([{ ids: [3, 4] }, { ids: [5] }], noPrefix);
    expect(f32.ids!.data).toEqual(Float32Array.from([3, 4, 5, 0]));
    expect(f32.m).toEqual({ type: 'float32', dims: [2, 2], data: Float32Array.from([1, 1, 1, 0]) });
  });

  it('refuses a padded value outside its dtype, naming the row and element', () => {
    const pre = padded('pad: 0,', 'uint8');
    expect(message(() => pre.run([{ ids: [1] }, { ids: [2, 256] }], at))).toBe(
      'CALIPER_INVALID_INPUT: instances[1].ids[1]: 256 does not fit preprocess tensor ids (uint8: 0 to 255)',
    );
    expect(message(() => pre.run([{ ids: [-1] }], at))).toContain('instances[0].ids[0]: -1 does not fit');
    expect(values(pre.run([{ ids: [255, 0] }], at).ids)).toEqual([255, 0]);
  });
});

describe('postprocess operations', () => {
  const post = (fields: string) =>
    new Postprocessor(
      config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, columns: [{ identity: a }] }
postprocess:
${fields}
`),
    );
  const row = (data: number[]): TensorMap => ({
    y: { type: 'float32', dims: [1, data.length], data: Float32Array.from(data) },
  });

  it('softmax: NaN anywhere makes every probability NaN; +Infinity shares the whole mass; -Infinity gets 0', () => {
    const p = post('  probs: { output: y, softmax: true }');
    expect(p.run(row([1, Number.NaN, 2]), 1)[0]!.probs).toEqual([Number.NaN, Number.NaN, Number.NaN]);
    expect(p.run(row([Infinity, 3, Infinity]), 1)[0]!.probs).toEqual([0.5, 0, 0.5]);
    expect(p.run(row([-Infinity, 0]), 1)[0]!.probs).toEqual([0, 1]);
    const big = p.run(row([1000, 1000]), 1)[0]!.probs as number[];
    expect(big).toEqual([0.5, 0.5]);
  });

  it('argmax: NaN ranks below numbers, all-NaN has no answer, ties keep the first, labels fall back to the index', () => {
    const p = post('  best: { output: y, argmax: true, labels: [a, b] }');
    expect(p.run(row([Number.NaN, -5, -6]), 1)[0]!.best).toBe('b');
    expect(p.run(row([Number.NaN, Number.NaN]), 1)[0]!.best).toBeNull();
    expect(p.run(row([2, 2]), 1)[0]!.best).toBe('a');
    expect(p.run(row([0, 1, 9]), 1)[0]!.best).toBe(2);
  });

  it('top_k: NaN ranks last, scores without softmax, probabilities with sigmoid, labels fall back to the index', () => {
    const scores = post('  top: { output: y, top_k: 2, labels: [a] }');
    expect(scores.run(row([Number.NaN, 1, 3]), 1)[0]!.top).toEqual([
      { label: 2, score: 3 },
      { label: 1, score: 1 },
    ]);
    expect(scores.run(row([Number.NaN, 0]), 1)[0]!.top).toEqual([
      { label: 1, score: 0 },
      { label: 'a', score: Number.NaN },
    ]);
    const sigmoid = post('  top: { output: y, sigmoid: true, top_k: 1 }');
    expect(sigmoid.run(row([0, -50]), 1)[0]!.top).toEqual([{ label: 0, probability: 0.5 }]);
  });

  it('threshold: strictly above is true, NaN has no verdict, and it needs exactly one value', () => {
    const p = post('  p: { output: y, index: 1 }\n  hot: { of: p, threshold: 0.5 }');
    expect(p.run(row([0, 0.5]), 1)[0]!.hot).toBe(false);
    expect(p.run(row([0, 0.51]), 1)[0]!.hot).toBe(true);
    expect(p.run(row([0, Number.NaN]), 1)[0]!.hot).toBeNull();
    expect(p.run(row([0, Infinity]), 1)[0]!.hot).toBe(true);
    const many = post('  hot: { output: y, threshold: 0.5 }');
    expect(message(() => many.run(row([1, 2]), 1))).toBe(
      'CALIPER_INFERENCE_FAILED: model.yaml: postprocess.hot.threshold: needs one value per prediction, the source has 2 (pick one with index)',
    );
  });

  it('index: picks one value, and names the field when the output is shorter', () => {
    const p = post('  second: { output: y, index: 1 }');
    expect(p.run(row([4, 5]), 1)[0]!.second).toBe(5);
    expect(message(() => p.run(row([4]), 1))).toBe(
      "CALIPER_INFERENCE_FAILED: model.yaml: postprocess.second.index: 1 is past the output's 1 values",
    );
  });

  it('splits outputs one row per instance, and refuses one that is not, unless the request is one instance', () => {
    const p = post('  y: { output: y }');
    const batch: TensorMap = { y: { type: 'int64', dims: [2, 2], data: BigInt64Array.from([1n, 2n, 3n, 4n]) } };
    expect(p.run(batch, 2)).toEqual([{ y: [1, 2] }, { y: [3, 4] }]);
    const pooled: TensorMap = { y: { type: 'float32', dims: [3, 1], data: Float32Array.from([7, 8, 9]) } };
    expect(message(() => p.run(pooled, 2))).toBe(
      'CALIPER_OUTPUT_NOT_ALIGNED: output "y" has shape [3, 1] for 2 instances; its first dimension is not one row per instance, so it cannot be split between them (send one instance per request)',
    );
    // One instance owns the whole output, whatever its first dimension (a detector's K boxes).
    expect(p.run(pooled, 1)).toEqual([{ y: [7, 8, 9] }]);
    const scalar: TensorMap = { y: { type: 'float32', dims: [], data: Float32Array.from([6]) } };
    expect(p.run(scalar, 1)).toEqual([{ y: 6 }]);
    expect(p.run(pooled, 0)).toEqual([]);
  });

  it('reshapes a row into nested lists and derives fields from earlier ones', () => {
    const p = post('  grid: { output: y, reshape: [2, 2] }\n  first: { of: grid, index: 0 }');
    expect(p.run(row([1, 2, 3, 4]), 1)[0]).toEqual({
      grid: [
        [1, 2],
        [3, 4],
      ],
      first: [1, 2],
    });
    expect(p.outputNames).toEqual(['y']);
  });

  it('asks the model only for the outputs the fields read, each once', () => {
    const p = post(
      '  a: { output: y }\n  b: { output: y, softmax: true }\n  c: { output: z }\n  d: { of: a, index: 0 }',
    );
    expect(p.outputNames).toEqual(['y', 'z']);
  });

  it('writes every NaN and ±Infinity as null in JSON answers, deep inside lists and objects', () => {
    const answer = {
      a: Number.NaN,
      b: [1, Infinity, [-Infinity]],
      c: { d: 2, e: [{ label: 'x', score: Number.NaN }] },
      s: 'x',
      n: null,
    };
    expect(nonFiniteAsNull(answer)).toEqual({
      a: null,
      b: [1, null, [null]],
      c: { d: 2, e: [{ label: 'x', score: null }] },
      s: 'x',
      n: null,
    });
    const typed = Float32Array.from([Number.NaN]);
    expect(nonFiniteAsNull(typed)).toBe(typed);
  });
});

describe('response schema of each field', () => {
  const specs = (fields: string) =>
    config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, columns: [{ identity: a }] }
postprocess:
${fields}
`).postprocess;
  const sig = (name: string, type: string, shape: number[]) =>
    ({ name, type, shape, dimNames: shape.map(() => '') }) as never;

  it('types each kind of field as the serializer must write it', () => {
    const [threshold, argmax, argmaxLabels, top, topP, grid, plain, picked, text, flag, vector, unknown] = specs(`
  t: { output: y, index: 0, threshold: 0.5 }
  am: { output: y, argmax: true }
  al: { output: y, argmax: true, labels: [a, b] }
  tk: { output: y, top_k: 2 }
  tp: { output: y, softmax: true, top_k: 2, labels: [a, b] }
  g: { output: y, reshape: [1, 2] }
  s: { output: one }
  i: { output: y, index: 1 }
  str: { output: words }
  b: { output: flags }
  v: { output: y }
  u: { output: missing }
`);
    const outputs = [
      sig('y', 'float32', [-1, 2]),
      sig('one', 'float32', [-1, 1]),
      sig('words', 'string', [-1]),
      sig('flags', 'bool', [-1, 1]),
    ];
    const number = { type: 'number', nullable: true };
    expect(Postprocessor.fieldSchema(threshold!, outputs)).toEqual({ type: 'boolean', nullable: true });
    expect(Postprocessor.fieldSchema(argmax!, outputs)).toEqual({ type: 'integer', nullable: true });
    expect(Postprocessor.fieldSchema(argmaxLabels!, outputs)).toEqual({ type: 'string', nullable: true });
    expect(Postprocessor.fieldSchema(top!, outputs)).toEqual({
      type: 'array',
      items: { type: 'object', properties: { label: { type: 'integer' }, score: number } },
    });
    expect(Postprocessor.fieldSchema(topP!, outputs)).toEqual({
      type: 'array',
      items: { type: 'object', properties: { label: { type: 'string' }, probability: number } },
    });
    expect(Postprocessor.fieldSchema(grid!, outputs)).toEqual({ type: 'array', items: {} });
    expect(Postprocessor.fieldSchema(plain!, outputs)).toEqual(number);
    expect(Postprocessor.fieldSchema(picked!, outputs)).toEqual(number);
    expect(Postprocessor.fieldSchema(text!, outputs)).toEqual({ type: 'string' });
    expect(Postprocessor.fieldSchema(flag!, outputs)).toEqual({ type: 'boolean' });
    expect(Postprocessor.fieldSchema(vector!, outputs)).toEqual({ type: 'array', items: number });
    expect(Postprocessor.fieldSchema(unknown!, outputs)).toEqual({ type: 'array', items: number });
  });
});
