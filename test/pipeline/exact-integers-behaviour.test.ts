import { describe, expect, it } from 'vitest';
import { parseModelConfigText } from '../../src/config/model-config-file.ts';
import type { CaliperError } from '../../src/errors.ts';
import { Postprocessor } from '../../src/pipeline/postprocess.ts';
import { Preprocessor } from '../../src/pipeline/preprocess.ts';
import type { RequestRow } from '../../src/pipeline/request-schema.ts';

/**
 * 64-bit integers beyond 2^53 (ids, hashes, timestamps in ns): a request's JSON parser hands them over as bigints, and a
 * model.yaml author relies on them reaching an int64/uint64 tensor with every digit, refused with the field named when
 * they do not fit, and on int64 outputs coming back exact. Below 2^53 they are plain numbers.
 */

const config = (body: string) => parseModelConfigText(body, 'model.yaml', '/tmp');
const at = (i: number): string => `instances[${i}].`;
const BIG = 2n ** 60n + 1n; // a double would round it to 2^60
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected an error');
}

/** One tensor `in` of `dtype` from the columns given (fields a: integer, v: array of 2 integers). */
function pre(dtype: string, columns: string): (rows: RequestRow[]) => unknown[] {
  const p = new Preprocessor(
    config(`
name: t
inputs: { a: { type: integer }, v: { type: array, items: integer, length: 2, required: false } }
preprocess: { tensor: in, dtype: ${dtype}, columns: [${columns}] }
postprocess: { out: { output: o } }
`),
  );
  return (rows) => Array.from(p.run(rows, at).in!.data as ArrayLike<unknown>);
}

describe('64-bit integers into a tensor', () => {
  it('reach an int64 or uint64 tensor with every digit, up to each end of the type', () => {
    expect(pre('int64', '{ identity: a }')([{ a: BIG }, { a: INT64_MAX }, { a: INT64_MIN }, { a: 7 }])).toEqual([
      BIG,
      INT64_MAX,
      INT64_MIN,
      7n,
    ]);
    expect(pre('uint64', '{ identity: a }')([{ a: UINT64_MAX }, { a: BIG }])).toEqual([UINT64_MAX, BIG]);
  });

  it('keep every digit in each element of an array field', () => {
    expect(pre('int64', '{ identity: a }, { identity: v }')([{ a: 1, v: [BIG, -BIG] }])).toEqual([1n, BIG, -BIG]);
  });

  it('refuse one outside the tensor type, naming the row, the field and the exact range', () => {
    expect(message(() => pre('int64', '{ identity: a }')([{ a: 1 }, { a: INT64_MAX + 1n }]))).toBe(
      `CALIPER_INVALID_INPUT: instances[1].a: ${INT64_MAX + 1n} does not fit preprocess tensor in (int64: ${INT64_MIN} to ${INT64_MAX})`,
    );
    expect(message(() => pre('int64', '{ identity: a }')([{ a: INT64_MIN - 1n }]))).toContain(
      `instances[0].a: ${INT64_MIN - 1n} does not fit`,
    );
    expect(message(() => pre('uint64', '{ identity: a }')([{ a: -1n }]))).toBe(
      `CALIPER_INVALID_INPUT: instances[0].a: -1 does not fit preprocess tensor in (uint64: 0 to ${UINT64_MAX})`,
    );
    expect(message(() => pre('uint64', '{ identity: a }')([{ a: UINT64_MAX + 1n }]))).toContain('does not fit');
    // In an array field, the element is named.
    expect(message(() => pre('int64', '{ identity: a }, { identity: v }')([{ a: 1, v: [1n, 2n ** 64n] }]))).toContain(
      `instances[0].v[1]: ${2n ** 64n} does not fit preprocess tensor in (int64:`,
    );
  });

  it('names the exact range of the type for a plain number outside a 64-bit tensor', () => {
    expect(message(() => pre('int64', '{ identity: a }')([{ a: 2 ** 64 }]))).toBe(
      `CALIPER_INVALID_INPUT: instances[0].a: ${2 ** 64} does not fit preprocess tensor in (int64: ${INT64_MIN} to ${INT64_MAX}, after rounding)`,
    );
  });

  it('go through a transform as the nearest double (a transformed value is no longer an exact id)', () => {
    expect(pre('int64', '{ identity: a, multiply: 2 }')([{ a: BIG }])).toEqual([2n ** 61n]);
    expect(pre('float64', '{ identity: a }')([{ a: BIG }])).toEqual([2 ** 60]);
    // A narrower integer tensor takes a small bigint as its number.
    expect(pre('int32', '{ identity: a }')([{ a: 5n }])).toEqual([5]);
  });

  it('pads a variable-length 64-bit field with every digit kept, and names an element that does not fit', () => {
    const padded = new Preprocessor(
      config(`
name: t
inputs: { ids: { type: array, items: integer, min_length: 1, max_length: 4 } }
preprocess: { tensor: ids, dtype: int64, pad: 0, attention_mask: mask, columns: [{ identity: ids }] }
postprocess: { out: { output: o } }
`),
    );
    const out = padded.run([{ ids: [BIG, 3] }, { ids: [-BIG] }], at);
    expect(Array.from(out.ids!.data as BigInt64Array)).toEqual([BIG, 3n, -BIG, 0n]);
    expect(Array.from(out.mask!.data as BigInt64Array)).toEqual([1n, 1n, 1n, 0n]);
    expect(message(() => padded.run([{ ids: [1] }, { ids: [2, INT64_MAX + 1n] }], at))).toBe(
      `CALIPER_INVALID_INPUT: instances[1].ids[1]: ${INT64_MAX + 1n} does not fit preprocess tensor ids (int64: ${INT64_MIN} to ${INT64_MAX})`,
    );
  });
});

describe('64-bit integer outputs', () => {
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

  it('come back exact beyond 2^53 and as plain numbers within it', () => {
    const outputs = {
      y: {
        type: 'int64' as const,
        dims: [2, 2],
        data: BigInt64Array.from([BIG, 5n, -(2n ** 53n) - 1n, -(2n ** 53n) + 1n]),
      },
    };
    expect(post('  y: { output: y }').run(outputs, 2)).toEqual([
      { y: [BIG, 5] },
      { y: [-(2n ** 53n) - 1n, -(2 ** 53) + 1] },
    ]);
    const unsigned = {
      y: { type: 'uint64' as const, dims: [1, 2], data: BigUint64Array.from([UINT64_MAX, 2n ** 53n - 1n]) },
    };
    expect(post('  y: { output: y }').run(unsigned, 1)).toEqual([{ y: [UINT64_MAX, 2 ** 53 - 1] }]);
  });

  it('are typed integer in the response schema, so the serializer writes every digit', () => {
    const fields = config(`
name: t
inputs: { a: { type: number } }
preprocess: { tensor: in, columns: [{ identity: a }] }
postprocess:
  id: { output: ids }
  first: { output: ids, index: 0 }
  count: { output: counts }
`).postprocess;
    const outputs = [
      { name: 'ids', type: 'int64', shape: [-1, 3], dimNames: [] },
      { name: 'counts', type: 'uint64', shape: [-1, 1], dimNames: [] },
    ] as never;
    expect(fields.map((f) => Postprocessor.fieldSchema(f, outputs))).toEqual([
      { type: 'array', items: { type: 'integer' } },
      { type: 'integer' },
      { type: 'integer' },
    ]);
  });

  it('enter arithmetic as their nearest double: sigmoid, softmax, argmax, top_k and threshold all answer', () => {
    const outputs = { y: { type: 'int64' as const, dims: [1, 2], data: BigInt64Array.from([BIG, -BIG]) } };
    const [answer] = post(`  s: { output: y, index: 0, sigmoid: true }
  m: { output: y, softmax: true }
  best: { output: y, argmax: true }
  top: { output: y, top_k: 1 }
  big: { output: y, index: 0, threshold: 0.5 }`).run(outputs, 1);
    expect(answer).toEqual({ s: 1, m: [1, 0], best: 0, top: [{ label: 0, score: 2 ** 60 }], big: true });
  });
});
