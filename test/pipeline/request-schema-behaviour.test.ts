import { describe, expect, it } from 'vitest';
import type { InputFieldSpec } from '../../src/config/model-config.ts';
import { CaliperError } from '../../src/errors.ts';
import { RequestSchema } from '../../src/pipeline/request-schema.ts';

/**
 * What a client of /predict meets when a request row is checked: which values pass, what an optional field or a
 * default becomes, and the 400 message naming the field and what was expected. Every schema is built per test.
 */

const field = (name: string, over: Partial<InputFieldSpec>): InputFieldSpec => ({
  name,
  type: 'number',
  required: true,
  ...over,
});

const schemaOf = (fields: InputFieldSpec[], unknownFields: 'reject' | 'ignore' = 'ignore', extra: string[] = []) =>
  new RequestSchema({ inputs: fields, unknownFields }, extra);

/** The 400 message for `row`, or undefined when it passes. */
function rejection(schema: RequestSchema, row: unknown, prefix?: string): string | undefined {
  try {
    schema.validate(row, prefix);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(CaliperError);
    expect((error as CaliperError).httpStatus).toBe(400);
    expect((error as CaliperError).code).toBe('CALIPER_INVALID_INPUT');
    return (error as CaliperError).message;
  }
}

describe('numbers and integers', () => {
  it('accepts values on both bounds and refuses values past either, naming the range', () => {
    const schema = schemaOf([field('amount', { minimum: 0, maximum: 100 })]);
    for (const amount of [0, 0.5, 100]) expect(schema.validate({ amount })).toEqual({ amount });
    expect(rejection(schema, { amount: 100.01 })).toBe(
      'amount: expected a number between 0 and 100, got number 100.01',
    );
    expect(rejection(schema, { amount: -0.01 })).toBe('amount: expected a number between 0 and 100, got number -0.01');
  });

  it('states a lone lower or upper bound as such', () => {
    const low = schemaOf([field('n', { minimum: 1 })]);
    expect(low.validate({ n: 1e9 })).toEqual({ n: 1e9 });
    expect(rejection(low, { n: 0 })).toBe('n: expected a number >= 1, got number 0');
    const high = schemaOf([field('n', { maximum: 5 })]);
    expect(high.validate({ n: -1e9 })).toEqual({ n: -1e9 });
    expect(rejection(high, { n: 6 })).toBe('n: expected a number <= 5, got number 6');
    const free = schemaOf([field('n', {})]);
    expect(rejection(free, { n: '3' })).toBe('n: expected a number, got "3"');
  });

  it('refuses NaN and Infinity, saying why', () => {
    const schema = schemaOf([field('n', {})]);
    expect(rejection(schema, { n: Number.NaN })).toBe(
      'n: expected a number, got number NaN (NaN and Infinity are not allowed)',
    );
    expect(rejection(schema, { n: Number.POSITIVE_INFINITY })).toContain('(NaN and Infinity are not allowed)');
    expect(rejection(schema, { n: '1' })).not.toContain('NaN and Infinity');
  });

  it('refuses a fractional integer, and accepts a whole one', () => {
    const schema = schemaOf([field('count', { type: 'integer', minimum: 0 })]);
    expect(schema.validate({ count: 3 })).toEqual({ count: 3 });
    expect(rejection(schema, { count: 2.5 })).toBe('count: expected an integer >= 0, got number 2.5');
    expect(rejection(schema, { count: true })).toBe('count: expected an integer >= 0, got boolean true');
  });
});

describe('booleans', () => {
  it('accepts true and false only', () => {
    const schema = schemaOf([field('flag', { type: 'boolean' })]);
    expect(schema.validate({ flag: true })).toEqual({ flag: true });
    expect(schema.validate({ flag: false })).toEqual({ flag: false });
    expect(rejection(schema, { flag: 'true' })).toBe('flag: expected true or false, got "true"');
    expect(rejection(schema, { flag: 1 })).toBe('flag: expected true or false, got number 1');
    expect(rejection(schema, { flag: 0 })).toBe('flag: expected true or false, got number 0');
  });
});

describe('strings and categories', () => {
  it('accepts any string for a free string field and refuses other types', () => {
    const schema = schemaOf([field('note', { type: 'string' })]);
    expect(schema.validate({ note: '' })).toEqual({ note: '' });
    expect(rejection(schema, { note: 5 })).toBe('note: expected a string, got number 5');
  });

  it('checks the category list itself, naming the allowed values', () => {
    const schema = schemaOf([field('category', { type: 'string', enum: ['grocery', 'travel'] })]);
    expect(schema.validate({ category: 'travel' })).toEqual({ category: 'travel' });
    expect(rejection(schema, { category: 'casino' })).toBe(
      'category: unknown category "casino" (expected one of grocery, travel)',
    );
    expect(rejection(schema, { category: 'Travel' })).toContain('unknown category "Travel"');
    expect(rejection(schema, { category: 3 })).toBe('category: expected one of grocery, travel, got number 3');
  });
});

describe('arrays', () => {
  it('refuses a non-array for an array field, saying how many numbers were expected', () => {
    const fixed = schemaOf([field('v', { type: 'array', length: 3 })]);
    expect(rejection(fixed, { v: 5 })).toBe('v: expected an array of 3 numbers, got number 5');
    expect(rejection(fixed, { v: { 0: 1 } })).toBe('v: expected an array of 3 numbers, got an object');
    const open = schemaOf([field('v', { type: 'array' })]);
    expect(rejection(open, { v: '1,2' })).toBe('v: expected an array, got "1,2"');
    expect(open.validate({ v: [] })).toEqual({ v: [] });
  });

  it('holds a fixed length exactly', () => {
    const schema = schemaOf([field('v', { type: 'array', length: 2 })]);
    expect(schema.validate({ v: [1, 2] })).toEqual({ v: [1, 2] });
    expect(rejection(schema, { v: [1] })).toBe('v: expected an array of 2 numbers, got 1');
    expect(rejection(schema, { v: [1, 2, 3] })).toBe('v: expected an array of 2 numbers, got 3');
  });

  it('holds a variable length within its bounds, both ends included', () => {
    const schema = schemaOf([field('v', { type: 'array', minLength: 2, maxLength: 4 })]);
    expect(schema.validate({ v: [1, 2] })).toEqual({ v: [1, 2] });
    expect(schema.validate({ v: [1, 2, 3, 4] })).toEqual({ v: [1, 2, 3, 4] });
    expect(rejection(schema, { v: [1] })).toBe('v: expected an array of 2 to 4 numbers, got 1');
    expect(rejection(schema, { v: [1, 2, 3, 4, 5] })).toBe('v: expected an array of 2 to 4 numbers, got 5');
    const atLeast = schemaOf([field('v', { type: 'array', minLength: 2 })]);
    expect(atLeast.validate({ v: new Array(500).fill(0) }).v).toHaveLength(500);
    expect(rejection(atLeast, { v: [1] })).toBe('v: expected an array of at least 2 numbers, got 1');
    expect(rejection(atLeast, { v: 'x' })).toBe('v: expected an array of at least 2 numbers, got "x"');
    const atMost = schemaOf([field('v', { type: 'array', maxLength: 2 })]);
    expect(atMost.validate({ v: [] })).toEqual({ v: [] });
    expect(rejection(atMost, { v: [1, 2, 3] })).toBe('v: expected an array of 0 to 2 numbers, got 3');
  });

  it('checks every element against the bounds, naming the first bad one by its index', () => {
    const schema = schemaOf([field('pixels', { type: 'array', length: 4, minimum: 0, maximum: 1 })]);
    expect(schema.validate({ pixels: [0, 0.5, 1, 0] })).toEqual({ pixels: [0, 0.5, 1, 0] });
    expect(rejection(schema, { pixels: [0, -0.1, 2, 0] })).toBe(
      'pixels[1]: expected a number between 0 and 1, got number -0.1',
    );
    expect(rejection(schema, { pixels: [0, 0, 1.5, 0] })).toBe(
      'pixels[2]: expected a number between 0 and 1, got number 1.5',
    );
    expect(rejection(schema, { pixels: [0, 0, 0, 'x'] })).toBe('pixels[3]: expected a number between 0 and 1, got "x"');
    expect(rejection(schema, { pixels: [0, 0, Number.NaN, 0] })).toContain('pixels[2]: expected a number');
  });

  it('refuses non-integers in an integer array, and accepts whole numbers of any size', () => {
    const schema = schemaOf([field('ids', { type: 'array', items: 'integer' })]);
    expect(schema.validate({ ids: [0, -3, 2 ** 40] })).toEqual({ ids: [0, -3, 2 ** 40] });
    expect(rejection(schema, { ids: [1, 2.5] })).toBe('ids[1]: expected an integer, got number 2.5');
    const numbers = schemaOf([field('xs', { type: 'array' })]);
    expect(numbers.validate({ xs: [1.5, -2.25] })).toEqual({ xs: [1.5, -2.25] });
  });
});

describe('required, optional and default fields', () => {
  it('refuses a missing required field, by name', () => {
    const schema = schemaOf([field('a', {}), field('b', {})]);
    expect(rejection(schema, { a: 1 })).toBe('b: required field is missing');
    expect(rejection(schema, { a: 1, b: null })).toBe('b: expected a number, got null');
  });

  it('checks a value sent for an optional field like any other', () => {
    const schema = schemaOf([field('a', {}), field('tip', { required: false, minimum: 0 })]);
    expect(schema.validate({ a: 1, tip: 2 })).toEqual({ a: 1, tip: 2 });
    expect(rejection(schema, { a: 1, tip: -1 })).toBe('tip: expected a number >= 0, got number -1');
    expect(rejection(schema, { a: 1, tip: 'x' })).toBe('tip: expected a number >= 0, got "x"');
  });

  it('leaves an optional field out when absent or null, or fills its default', () => {
    const schema = schemaOf([
      field('a', {}),
      field('tip', { required: false }),
      field('currency', { type: 'string', required: false, default: 'EUR' }),
    ]);
    expect(schema.validate({ a: 1 })).toEqual({ a: 1, currency: 'EUR' });
    expect(schema.validate({ a: 1, tip: null, currency: null })).toEqual({ a: 1, currency: 'EUR' });
    expect(schema.validate({ a: 1, currency: 'USD' })).toEqual({ a: 1, currency: 'USD' });
    expect(Object.keys(schema.validate({ a: 1 }))).not.toContain('tip');
  });

  it('uses a false or zero default as given', () => {
    const schema = schemaOf([
      field('flag', { type: 'boolean', required: false, default: false }),
      field('n', { required: false, default: 0 }),
    ]);
    expect(schema.validate({})).toEqual({ flag: false, n: 0 });
  });
});

describe('the row as a whole', () => {
  it('refuses a body that is not an object, listing the fields expected', () => {
    const schema = schemaOf([field('a', {}), field('b', {})]);
    expect(rejection(schema, [1, 2])).toBe('body: expected a JSON object with fields a, b, got an array of 2');
    expect(rejection(schema, null)).toBe('body: expected a JSON object with fields a, b, got null');
    expect(rejection(schema, 'x')).toBe('body: expected a JSON object with fields a, b, got "x"');
    expect(rejection(schema, 7, 'instances[2]')).toBe(
      'instances[2]: expected a JSON object with fields a, b, got number 7',
    );
  });

  it('locates errors inside a batch with the prefix given', () => {
    const schema = schemaOf([field('a', { maximum: 1 })]);
    expect(rejection(schema, { a: 2 }, 'instances[3].')).toBe('instances[3].a: expected a number <= 1, got number 2');
    expect(rejection(schema, {}, 'instances[0].')).toBe('instances[0].a: required field is missing');
  });

  it('drops unknown fields by default and refuses them when unknown_fields is reject', () => {
    const lenient = schemaOf([field('a', {})]);
    expect(lenient.validate({ a: 1, junk: 2 })).toEqual({ a: 1 });
    const strict = schemaOf([field('a', {}), field('b', { required: false })], 'reject');
    expect(strict.validate({ a: 1 })).toEqual({ a: 1 });
    expect(rejection(strict, { a: 1, junk: 2 }, 'instances[1].')).toBe(
      'instances[1].junk: unknown field (expected only a, b)',
    );
  });

  it('passes a hook module’s extra fields through unchecked, and only when sent', () => {
    const schema = schemaOf([field('a', {})], 'reject', ['raw_text']);
    expect(schema.validate({ a: 1, raw_text: { any: 'thing' } })).toEqual({ a: 1, raw_text: { any: 'thing' } });
    expect(schema.validate({ a: 1 })).toStrictEqual({ a: 1 });
    expect(rejection(schema, { a: 1, other: 1 })).toBe('other: unknown field (expected only a)');
  });
});
