import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';
import type { CaliperError } from '../../src/errors.ts';
import { Postprocessor } from '../../src/pipeline/postprocess.ts';
import { Preprocessor } from '../../src/pipeline/preprocess.ts';

/**
 * Edges of building input tensors a model.yaml author meets: which value a range error names (an array element, a field
 * after others), NaN from a transform in float16, and padded fields that are empty, missing or transformed.
 */

const config = (body: string) => parseModelConfigText(body, 'model.yaml', '/tmp');
const at = (i: number): string => `instances[${i}].`;
const values = (t: { data: ArrayLike<unknown> } | undefined): unknown[] => Array.from(t!.data);

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected an error');
}

describe('range errors name the value that does not fit', () => {
  // Built in each test, so each test's coverage includes the constructor (see transforms.test.ts).
  const pre = (): Preprocessor =>
    new Preprocessor(
      config(`
name: t
inputs: { a: { type: number }, c: { type: string }, v: { type: array, length: 3 } }
preprocess:
  tensor: in
  dtype: uint8
  columns: [{ identity: a }, { one_hot: c, categories: [p, q] }, { identity: v }]
postprocess: { out: { output: o } }
`),
    );

  it('by element for an array field, after the one-hot block, in the row it is in', () => {
    expect(values(pre().run([{ a: 1, c: 'q', v: [0, 255, 7] }], at).in)).toEqual([1, 0, 1, 0, 255, 7]);
    expect(
      message(() =>
        pre().run(
          [
            { a: 1, c: 'p', v: [0, 0, 0] },
            { a: 2, c: 'q', v: [1, 300, 2] },
          ],
          at,
        ),
      ),
    ).toBe(
      'CALIPER_INVALID_INPUT: instances[1].v[1]: 300 does not fit preprocess tensor in (uint8: 0 to 255, after rounding)',
    );
    expect(message(() => pre().run([{ a: -4, c: 'p', v: [0, 0, 0] }], at))).toContain(
      'instances[0].a: -4 does not fit',
    );
  });
});

describe('float16', () => {
  it('keeps a NaN a transform produced (float16 has one)', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, dtype: float16, columns: [{ log1p: a }] }
postprocess: { out: { output: o } }
`),
    );
    const [nan] = values(pre.run([{ a: -2 }], at).in) as number[];
    // A half-precision NaN: exponent all ones, mantissa not zero.
    expect(nan! & 0x7c00).toBe(0x7c00);
    expect(nan! & 0x03ff).not.toBe(0);
  });

  it('keeps a NaN in a padded float16 field', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { ids: { type: array, min_length: 1, max_length: 4 } }
preprocess: { tensor: ids, dtype: float16, pad: 0, columns: [{ log1p: ids }] }
postprocess: { out: { output: o } }
`),
    );
    const out = values(pre.run([{ ids: [0, -2] }], at).ids) as number[];
    expect(out[0]).toBe(0);
    expect(out[1]! & 0x7c00).toBe(0x7c00);
  });
});

describe('padded fields', () => {
  const padded = (dtype: string, column = '{ identity: ids }') =>
    new Preprocessor(
      config(`
name: t
inputs: { ids: { type: array, items: number, min_length: 1, max_length: 4, required: false } }
preprocess: { tensor: ids, dtype: ${dtype}, pad: -1, attention_mask: mask, columns: [${column}] }
postprocess: { out: { output: o } }
`),
    );

  it('gives a batch whose optional field is missing one padded position per row, all masked out', () => {
    const out = padded('float32').run([{}, {}], at);
    expect(out.ids).toEqual({ type: 'float32', dims: [2, 1], data: Float32Array.from([-1, -1]) });
    expect(out.mask).toEqual({ type: 'float32', dims: [2, 1], data: Float32Array.from([0, 0]) });
  });

  it('applies the column transform to each real element, not to the padding', () => {
    const out = padded('float64', '{ identity: ids, multiply: 10 }').run([{ ids: [1, 2] }, { ids: [3] }], at);
    expect(values(out.ids)).toEqual([10, 20, 30, -1]);
    expect(values(out.mask)).toEqual([1, 1, 1, 0]);
  });

  it('writes an integer mask for an integer tensor', () => {
    const out = padded('int32').run([{ ids: [4] }, { ids: [5, 6] }, {}], at);
    expect(out.ids).toEqual({ type: 'int32', dims: [3, 2], data: Int32Array.from([4, -1, 5, 6, -1, -1]) });
    expect(out.mask).toEqual({ type: 'int32', dims: [3, 2], data: Int32Array.from([1, 0, 1, 1, 0, 0]) });
  });
});

describe('postprocess edges', () => {
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

  it('softmax: a NaN makes every probability NaN even beside a +Infinity', () => {
    const [answer] = post('  p: { output: y, softmax: true }').run(
      { y: { type: 'float32', dims: [1, 3], data: Float32Array.from([Number.NaN, Number.POSITIVE_INFINITY, 1]) } },
      1,
    );
    expect(answer).toEqual({ p: [Number.NaN, Number.NaN, Number.NaN] });
  });

  it('a string output is answered as the text the model gave, even when it reads as a number', () => {
    const [answer] = post('  label: { output: words }').run(
      { words: { type: 'string', dims: [1, 2], data: ['5', 'cat'] } },
      1,
    );
    expect(answer).toEqual({ label: ['5', 'cat'] });
  });
});
