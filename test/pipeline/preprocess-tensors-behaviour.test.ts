import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';
import type { CaliperError } from '../../src/errors.ts';
import { Preprocessor, padValuesOf } from '../../src/pipeline/preprocess.ts';
import type { RequestRow } from '../../src/pipeline/request-schema.ts';

/**
 * The input tensors a model.yaml builds, as ONNX Runtime and the batcher receive them: the typed array of each dtype,
 * the tensors a padded field yields and nothing else, its row shape, 64-bit integers at every position of a padded
 * field, values a padded integer tensor cannot hold, and the names errors give.
 */

const config = (body: string) => parseModelConfigText(body, 'model.yaml', '/tmp');
const at = (i: number): string => `instances[${i}].`;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const BIG = 2n ** 60n + 1n; // a double would round it to 2^60

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected an error');
}

/** One tensor `in` of `dtype` with one column `identity: a`. */
const scalar = (dtype: string) =>
  new Preprocessor(
    config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, dtype: ${dtype}, columns: [{ identity: a }] }
postprocess: { out: { output: o } }
`),
  );

/** One padded tensor `ids` of `dtype` from a variable-length array field, with the padding settings given. */
const padded = (dtype: string, extra: string, column = '{ identity: ids }') =>
  new Preprocessor(
    config(`
name: t
inputs: { ids: { type: array, items: integer, min_length: 1, max_length: 4 } }
preprocess: { tensor: ids, dtype: ${dtype}, ${extra} columns: [${column}] }
postprocess: { out: { output: o } }
`),
  );

describe('each dtype in its own typed array (what ONNX Runtime reads the bytes as)', () => {
  it('writes every dtype with the typed array of that dtype', () => {
    const expected: [string, new (n: number) => ArrayLike<unknown>][] = [
      ['float32', Float32Array],
      ['float64', Float64Array],
      ['float16', Uint16Array],
      ['int8', Int8Array],
      ['uint8', Uint8Array],
      ['int16', Int16Array],
      ['uint16', Uint16Array],
      ['int32', Int32Array],
      ['uint32', Uint32Array],
      ['int64', BigInt64Array],
      ['uint64', BigUint64Array],
      ['bool', Uint8Array],
    ];
    for (const [dtype, type] of expected) {
      const tensor = scalar(dtype).run([{ a: 1 }, { a: 0 }], at).in!;
      expect(tensor.type, dtype).toBe(dtype);
      expect(tensor.data, dtype).toBeInstanceOf(type);
      expect(tensor.dims).toEqual([2, 1]);
    }
  });

  it('writes an int64 tensor from an array field of plain integers, a bigint among them exactly', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { v: { type: array, items: integer, length: 3 } }
preprocess: { tensor: in, dtype: int64, columns: [{ identity: v }] }
postprocess: { out: { output: o } }
`),
    );
    expect(pre.run([{ v: [1, -2, 3] }, { v: [4, BIG, 6] } as unknown as RequestRow], at).in!.data).toEqual(
      BigInt64Array.from([1n, -2n, 3n, 4n, BIG, 6n]),
    );
  });

  it('keeps uint8 and uint16 values above the signed range', () => {
    expect(Array.from(scalar('uint8').run([{ a: 200 }], at).in!.data as Uint8Array)).toEqual([200]);
    expect(Array.from(scalar('uint16').run([{ a: 60000 }], at).in!.data as Uint16Array)).toEqual([60000]);
  });
});

describe('lookup columns', () => {
  it('match the request value as text only: a number is unknown even when its digits are a key', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { c: { type: string } }
preprocess: { tensor: in, columns: [{ lookup: c, table: { "7": 3, x: 4 }, unknown: -1 }] }
postprocess: { out: { output: o } }
`),
    );
    expect(Array.from(pre.run([{ c: '7' }, { c: 7 } as RequestRow, { c: 'x' }], at).in!.data as Float32Array)).toEqual([
      3, -1, 4,
    ]);
  });
});

describe('padded fields', () => {
  it('are one numeric column: model.yaml refuses padding on two columns, and one_hot or lookup on an array field', () => {
    expect(message(() => padded('float32', 'pad: 0,', '{ identity: ids }, { identity: ids }'))).toBe(
      'CALIPER_CONFIG_INVALID: model.yaml: preprocess.pad: expected padding only on a tensor of one column, a variable-length array field (min_length/max_length), without shape, got number 0',
    );
    for (const op of ['one_hot', 'lookup']) {
      const column = op === 'one_hot' ? '{ one_hot: ids, categories: [a, b] }' : '{ lookup: ids, table: { a: 1 } }';
      expect(message(() => padded('float32', 'pad: 0,', column))).toBe(
        `CALIPER_CONFIG_INVALID: model.yaml: preprocess.columns[0].${op}: expected a string field (inputs.ids is an array: ${op} matches text; use a numeric transform), got "ids"`,
      );
    }
  });

  it('yield their tensor and, only when attention_mask is set, the mask: no other tensor', () => {
    expect(Object.keys(padded('float32', 'pad: 0,').run([{ ids: [1] }], at))).toEqual(['ids']);
    expect(Object.keys(padded('float32', 'pad: 0, pad_to: 4,').run([{ ids: [1] }], at))).toEqual(['ids']);
    expect(Object.keys(padded('float32', 'pad: 0, attention_mask: m,').run([{ ids: [1] }], at))).toEqual(['ids', 'm']);
  });

  it('give the batcher their pad value, and the mask 0, only for what they name', () => {
    expect(padValuesOf(padded('int64', 'pad: 7,').builders.map((b) => b.spec))).toEqual(new Map([['ids', 7]]));
  });

  it('have a row shape of -1 (the batch decides) or of pad_to, as the model input is checked against', () => {
    expect(padded('float32', 'pad: 0,').builders[0]!.rowShape).toEqual([-1]);
    expect(padded('float32', 'pad: 0, pad_to: 4,').builders[0]!.rowShape).toEqual([4]);
  });

  it('write a float64 mask for a float64 tensor and a float32 mask for a float32 one', () => {
    const f64 = padded('float64', 'pad: 0, attention_mask: m,').run([{ ids: [1, 2] }, { ids: [3] }], at);
    expect(f64.m).toEqual({ type: 'float64', dims: [2, 2], data: Float64Array.from([1, 1, 1, 0]) });
    expect(f64.m!.data).toBeInstanceOf(Float64Array);
    const f32 = padded('float32', 'pad: 0, attention_mask: m,').run([{ ids: [1, 2] }, { ids: [3] }], at);
    expect(f32.m!.data).toBeInstanceOf(Float32Array);
  });

  it('carry 64-bit integers with every digit at any position of any row, up to each end of int64, masked as real', () => {
    const pre = padded('int64', 'pad: 0, attention_mask: m,');
    const out = pre.run([{ ids: [1] }, { ids: [2, BIG, INT64_MAX, INT64_MIN] } as unknown as RequestRow], at);
    expect(out.ids).toEqual({
      type: 'int64',
      dims: [2, 4],
      data: BigInt64Array.from([1n, 0n, 0n, 0n, 2n, BIG, INT64_MAX, INT64_MIN]),
    });
    expect(Array.from(out.m!.data as BigInt64Array)).toEqual([1n, 0n, 0n, 0n, 1n, 1n, 1n, 1n]);
  });

  it('refuse a 64-bit integer beyond int64 or below uint64, naming the row and element', () => {
    expect(
      message(() =>
        padded('int64', 'pad: 0,').run([{ ids: [1] }, { ids: [1, INT64_MIN - 1n] } as unknown as RequestRow], at),
      ),
    ).toBe(
      `CALIPER_INVALID_INPUT: instances[1].ids[1]: ${INT64_MIN - 1n} does not fit preprocess tensor ids (int64: ${INT64_MIN} to ${INT64_MAX})`,
    );
    expect(
      message(() => padded('int64', 'pad: 0,').run([{ ids: [INT64_MAX + 1n] } as unknown as RequestRow], at)),
    ).toContain(`instances[0].ids[0]: ${INT64_MAX + 1n} does not fit`);
    expect(message(() => padded('uint64', 'pad: 0,').run([{ ids: [-BIG] } as unknown as RequestRow], at))).toContain(
      `instances[0].ids[0]: ${-BIG} does not fit preprocess tensor ids (uint64: 0 to ${2n ** 64n - 1n})`,
    );
  });

  it('transform a 64-bit integer like any value when the column has steps, instead of passing it exactly', () => {
    const pre = padded('int64', 'pad: 0,', '{ identity: ids, multiply: 2 }');
    expect(pre.run([{ ids: [BIG] } as unknown as RequestRow], at).ids!.data).toEqual(BigInt64Array.from([2n ** 61n]));
  });

  it('refuse a NaN a transform produced in an integer tensor (only float16 has a NaN)', () => {
    expect(message(() => padded('uint8', 'pad: 0,', '{ log1p: ids }').run([{ ids: [3, -2] }], at))).toBe(
      'CALIPER_INVALID_INPUT: instances[0].ids[1]: NaN does not fit preprocess tensor ids (uint8: 0 to 255)',
    );
  });
});

describe('names in errors', () => {
  it('names the field of a string that has no text form, in its row', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { s: { type: string } }
preprocess: { tensor: text, dtype: string, shape: [], columns: [{ identity: s }] }
postprocess: { out: { output: o } }
`),
    );
    expect(message(() => pre.run([{ s: 'ok' }, { s: 'a\u0000b' }], at))).toMatch(
      /^CALIPER_INVALID_INPUT: instances\[1\]\.s: string has a NUL character/,
    );
  });

  it('names an array element by its index, whatever the array length, and a scalar field by its name', () => {
    const pre = new Preprocessor(
      config(`
name: t
inputs: { a: { type: number }, v: { type: array, length: 1 } }
preprocess: { tensor: in, dtype: uint8, columns: [{ identity: a }, { identity: v }] }
postprocess: { out: { output: o } }
`),
    );
    expect(message(() => pre.run([{ a: 1, v: [300] }], at))).toBe(
      'CALIPER_INVALID_INPUT: instances[0].v[0]: 300 does not fit preprocess tensor in (uint8: 0 to 255, after rounding)',
    );
    expect(message(() => pre.run([{ a: 300, v: [1] }], at))).toContain('instances[0].a: 300 does not fit');
  });
});
