import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';
import { Postprocessor } from '../../src/pipeline/postprocess.ts';
import { Preprocessor } from '../../src/pipeline/preprocess.ts';
import { RequestSchema } from '../../src/pipeline/request-schema.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';

const config = (body: string) => parseModelConfigText(body, 'model.yaml', '/tmp');
const noPrefix = (): string => '';

describe('preprocess transforms', () => {
  const c = config(`
name: t
inputs:
  a: { type: number }
  b: { type: number }
  c: { type: string, enum: [x, y, z] }
  d: { type: string }
  v: { type: array, length: 2 }
  f: { type: boolean }
preprocess:
  tensor: in
  columns:
    - { identity: a }
    - { log1p: a }
    - { standardize: a, mean: 2, std: 4 }
    - { min_max: b, min: 10, max: 20 }
    - { clip: b, min: 0, max: 12 }
    - { log1p: b, divide: 10 }
    - { identity: a, multiply: 3 }
    - { one_hot: c }
    - { one_hot: d, categories: [p, q], unknown: zeros }
    - { lookup: c }
    - { lookup: d, table: { p: 7, q: 9 }, unknown: -1 }
    - { min_max: v, min: 0, max: 4 }
    - { identity: f }
postprocess:
  out: { output: o }
`);
  // Built in each test (not once for the file), so each test's coverage includes the constructor: mutation testing
  // then runs these tests against the column widths and writers it builds.
  const pre = (): Preprocessor => new Preprocessor(c);

  it('computes every column as documented', () => {
    const { in: tensor } = pre().run([{ a: 6, b: 15, c: 'y', d: 'q', v: [1, 4], f: true }], noPrefix);
    // a, log1p(a), (a-2)/4, (b-10)/10, clip(b), log1p(b)/10, 3a, one_hot c (3), one_hot d (2), lookup c, lookup d, v (2), f
    const expected = [6, Math.log1p(6), 1, 0.5, 12, Math.log1p(15) / 10, 18, 0, 1, 0, 0, 1, 1, 9, 0.25, 1, 1];
    expect(tensor!.dims).toEqual([1, expected.length]);
    expect(Array.from(tensor!.data as Float32Array)).toEqual(expected.map(Math.fround));
  });

  it('maps unknown categories to zeros or the lookup default when configured, and errors otherwise', () => {
    const { in: tensor } = pre().run([{ a: 0, b: 0, c: 'x', d: 'zzz', v: [0, 0], f: false }], noPrefix);
    const values = Array.from(tensor!.data as Float32Array);
    expect(values.slice(10, 12)).toEqual([0, 0]); // one_hot d: unknown → zeros
    expect(values[13]).toBe(-1); // lookup d: unknown → -1
    const strict = new Preprocessor(
      config(`
name: t
inputs: { d: { type: string } }
preprocess: { tensor: in, columns: [{ one_hot: d, categories: [p, q] }] }
postprocess: { out: { output: o } }
`),
    );
    expect(() => strict.run([{ d: 'r' }], (i) => `instances[${i}].`)).toThrow(
      'instances[0].d: unknown category "r" (expected one of p, q)',
    );
  });

  it('builds int64 index tensors and reshapes rows', () => {
    const p = new Preprocessor(
      config(`
name: t
inputs: { c: { type: string, enum: [x, y] }, img: { type: array, length: 4 } }
preprocess:
  tensors:
    - { tensor: idx, dtype: int64, columns: [{ lookup: c }] }
    - { tensor: image, shape: [1, 2, 2], columns: [{ identity: img }] }
postprocess: { out: { output: o } }
`),
    );
    const out = p.run(
      [
        { c: 'y', img: [1, 2, 3, 4] },
        { c: 'x', img: [5, 6, 7, 8] },
      ],
      noPrefix,
    );
    expect(out.idx).toEqual({ type: 'int64', dims: [2, 1], data: BigInt64Array.from([1n, 0n]) });
    expect(out.image!.dims).toEqual([2, 1, 2, 2]);
  });
});

describe('postprocess fields', () => {
  const c = config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, columns: [{ identity: a }] }
postprocess:
  logits: { output: y }
  probs: { output: y, softmax: true }
  label: { output: y, argmax: true, labels: [cat, dog, eel] }
  index: { output: y, argmax: true }
  top2: { output: y, softmax: true, top_k: 2, labels: [cat, dog, eel] }
  raw_top: { output: y, top_k: 1 }
  p: { output: s, index: 0, sigmoid: true }
  yes: { of: p, threshold: 0.5 }
  grid: { output: y6, reshape: [2, 3] }
`);
  const post = new Postprocessor(c);
  const outputs: TensorMap = {
    y: { type: 'float32', dims: [2, 3], data: Float32Array.from([1, 3, 2, 0, 0, 5]) },
    s: { type: 'float32', dims: [2, 1], data: Float32Array.from([0, -10]) },
    y6: { type: 'int64', dims: [2, 6], data: BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n, 11n, 12n]) },
  };

  it('computes softmax, argmax, top-k, sigmoid, threshold and reshape per row', () => {
    const [first, second] = post.run(outputs, 2);
    const e = [Math.exp(1 - 3), 1, Math.exp(2 - 3)];
    const sum = e[0]! + e[1]! + e[2]!;
    expect(first!.logits).toEqual([1, 3, 2]);
    expect((first!.probs as number[]).map((v) => v.toFixed(12))).toEqual(e.map((v) => (v / sum).toFixed(12)));
    expect(first!.label).toBe('dog');
    expect(first!.index).toBe(1);
    expect(first!.top2).toEqual([
      { label: 'dog', probability: e[1]! / sum },
      { label: 'eel', probability: e[2]! / sum },
    ]);
    expect(first!.raw_top).toEqual([{ label: 1, score: 3 }]);
    expect(first!.p).toBe(0.5);
    expect(first!.yes).toBe(false);
    expect(second!.label).toBe('eel');
    expect(second!.p).toBeCloseTo(1 / (1 + Math.exp(10)), 12);
    expect(second!.grid).toEqual([
      [7, 8, 9],
      [10, 11, 12],
    ]);
  });

  it('ranks ties by index and answers every value when top_k is larger than the output', () => {
    const tied = new Postprocessor(
      config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, columns: [{ identity: a }] }
postprocess:
  top5: { output: y, top_k: 5, labels: [cat, dog, eel] }
`),
    );
    const [row] = tied.run({ y: { type: 'float32', dims: [1, 3], data: Float32Array.from([2, 7, 7]) } }, 1);
    expect(row!.top5).toEqual([
      { label: 'dog', score: 7 },
      { label: 'eel', score: 7 },
      { label: 'cat', score: 2 },
    ]);
  });
});

describe('request schema', () => {
  it('fills defaults, ignores unknown fields when configured, and checks integers', () => {
    const schema = new RequestSchema(
      config(`
name: t
unknown_fields: ignore
inputs: { n: { type: integer, minimum: 1 }, mode: { type: string, default: fast } }
preprocess: { tensor: in, columns: [{ identity: n }] }
postprocess: { out: { output: o } }
`),
    );
    expect(schema.validate({ n: 3, extra: true })).toEqual({ n: 3, mode: 'fast' });
    expect(() => schema.validate({ n: 2.5 })).toThrow('n: expected an integer >= 1, got number 2.5');
  });
});
