import type { ModelSignature } from './model-signature.ts';
import { zeroTensor, type TensorMap } from './tensor.ts';

/**
 * Inputs synthesized from a model's signature for a warm-up or check run: a zero tensor per input. A fixed
 * dimension keeps its size; a dynamic first dimension (the batch axis) is `rows`; another dynamic dimension takes
 * the width model.yaml's preprocess builds for that position (`rowShapeOf(input)[i - 1]`), else 1.
 */
export function warmUpFeeds(
  signature: ModelSignature,
  rows: number,
  rowShapeOf: (input: string) => readonly number[] | undefined = () => undefined,
): TensorMap {
  const feeds: TensorMap = {};
  for (const input of signature.inputs) {
    const rowShape = rowShapeOf(input.name);
    const dims = input.shape.map((d, i) => (d !== -1 ? d : i === 0 ? rows : Math.max(1, rowShape?.[i - 1] ?? 1)));
    feeds[input.name] = zeroTensor(input.type, dims);
  }
  return feeds;
}

/** "features float32 [1, 10], ids int64 [1, 4]": the feeds of a check run, for its error message. */
export function describeFeeds(feeds: TensorMap): string {
  return Object.entries(feeds)
    .map(([name, t]) => `${name} ${t.type} [${t.dims.join(', ')}]`)
    .join(', ');
}
