import type { ElementType } from './tensor.ts';

/** One model input or output as read from the ONNX file: -1 (or a name) marks a dynamic dimension. */
export interface TensorSignature {
  name: string;
  type: ElementType;
  /** Dimensions; a dynamic dimension is -1. */
  shape: number[];
  /** Names of symbolic dimensions, where the model gives them. */
  dimNames: (string | undefined)[];
  /** False for a value that is not a tensor (a sequence or map, e.g. scikit-learn's ZipMap output). */
  isTensor?: false;
}

/** An output ONNX Runtime for Node cannot hand back (a sequence or a map, e.g. scikit-learn's ZipMap): never fetched. */
export interface UnservedOutput {
  name: string;
  /** The value's ONNX type, e.g. seq(map(int64,tensor(float))), once read from the model file. */
  type: string;
}

export interface ModelSignature {
  inputs: TensorSignature[];
  /** The tensor outputs: the ones served. */
  outputs: TensorSignature[];
  /** Outputs that are not tensors, listed so metadata and model.yaml errors can name them. */
  unserved?: UnservedOutput[];
}

/** True when the first dimension of every input and output is dynamic, so requests can be stacked into one batch. */
export function hasBatchDimension(signature: ModelSignature): boolean {
  return [...signature.inputs, ...signature.outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
}

/**
 * The number of rows a model without a batch dimension takes per run, when every input fixes the same first
 * dimension above 1 (a PyTorch export without dynamic_axes, traced at batch size 2, takes exactly 2 rows).
 */
export function fixedRowCount(signature: ModelSignature): number | undefined {
  if (hasBatchDimension(signature)) return undefined;
  const firsts = new Set(signature.inputs.map((t) => (t.shape.length > 0 ? t.shape[0]! : -1)));
  const [first] = [...firsts];
  return firsts.size === 1 && first !== undefined && first > 1 ? first : undefined;
}
