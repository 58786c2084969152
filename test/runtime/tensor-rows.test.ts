import { describe, expect, it } from 'vitest';
import { sliceRows, type TensorData } from '../../src/runtime/tensor.ts';

describe('sliceRows: a request’s rows out of a batch’s tensor', () => {
  const batch: TensorData = {
    type: 'float32',
    dims: [4, 2, 3],
    data: new Float32Array(Array.from({ length: 24 }, (_, i) => i)),
  };

  it('cuts whole rows of every trailing dim, as a view of the batch’s buffer', () => {
    const part = sliceRows(batch, 1, 2);
    expect(part.type).toBe('float32');
    expect(part.dims).toEqual([2, 2, 3]);
    expect(Array.from(part.data as Float32Array)).toEqual(Array.from({ length: 12 }, (_, i) => 6 + i));
    expect((part.data as Float32Array).buffer).toBe((batch.data as Float32Array).buffer);
    expect(batch.dims).toEqual([4, 2, 3]);
  });

  it('cuts one-dimensional tensors element by element and copies strings', () => {
    const flat: TensorData = { type: 'int32', dims: [3], data: new Int32Array([7, 8, 9]) };
    expect(sliceRows(flat, 2, 1)).toEqual({ type: 'int32', dims: [1], data: new Int32Array([9]) });
    const words: TensorData = { type: 'string', dims: [3, 2], data: ['a', 'b', 'c', 'd', 'e', 'f'] };
    expect(sliceRows(words, 1, 1)).toEqual({ type: 'string', dims: [1, 2], data: ['c', 'd'] });
  });
});
