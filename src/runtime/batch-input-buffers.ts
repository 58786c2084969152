import { concatRows, type TensorData, type TensorMap, typedArrayOver } from './tensor.ts';

/**
 * A batch's inputs before they are stacked: per input name, the tensors of the batch's requests in batch order (they
 * agree on type and on every dim beyond dim 0). The runner that runs the batch decides where the stacked rows go.
 */
export type BatchParts = Record<string, readonly TensorData[]>;

/** Every input's parts stacked along dim 0 into new buffers (a single part is passed through as it is). */
export function stackParts(parts: BatchParts): TensorMap {
  const feeds: TensorMap = {};
  for (const name in parts) feeds[name] = concatRows(parts[name]!);
  return feeds;
}

/**
 * One buffer per model input, reused from batch to batch: a batch's rows are written into the front of its input's
 * buffer and the tensor is a view of exactly those rows. A buffer grows (to the batch's size, at least doubling) only
 * when a batch does not fit, so after the first largest batch no batch allocates: a new buffer per batch is faulted
 * into memory again batch after batch (issue 17: the 784-1024-1024-10 MLP's run cost 1.25–1.32× the floor's with
 * one, ≈ 1.0× with one reused).
 *
 * The owner must be done with a stacked tensor before it stacks the next batch: an in-thread instance, whose run is
 * synchronous and whose outputs ONNX Runtime returns in buffers of their own. String tensors and single parts are
 * not copied into a buffer (a single part is returned as it is).
 */
export class BatchInputBuffers {
  private readonly buffers = new Map<string, ArrayBuffer>();

  /** The parts stacked per input name; the numeric ones are views of this object's buffers until the next call. */
  stack(parts: BatchParts): TensorMap {
    const feeds: TensorMap = {};
    for (const name in parts) feeds[name] = this.stackOne(name, parts[name]!);
    return feeds;
  }

  private stackOne(name: string, parts: readonly TensorData[]): TensorData {
    const first = parts[0]!;
    if (parts.length === 1 || first.type === 'string') return concatRows(parts);
    let rows = 0;
    let elements = 0;
    for (const part of parts) {
      rows += part.dims[0] ?? 1;
      elements += part.data.length;
    }
    const bytes = elements * (first.data as Float32Array).BYTES_PER_ELEMENT;
    let buffer = this.buffers.get(name);
    if (buffer === undefined || buffer.byteLength < bytes) {
      buffer = new ArrayBuffer(Math.max(bytes, 2 * (buffer?.byteLength ?? 0)));
      this.buffers.set(name, buffer);
    }
    const data = typedArrayOver(first.type, buffer, elements);
    let offset = 0;
    for (const part of parts) {
      (data as Float32Array).set(part.data as Float32Array, offset);
      offset += part.data.length;
    }
    const dims = first.dims.slice();
    dims[0] = rows;
    return { type: first.type, dims, data };
  }
}
