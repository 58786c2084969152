import type { ElementType } from './tensor.ts';

/** One model input or output as read from the ONNX file: -1 (or a name) marks a dynamic dimension. */
export interface TensorSignature {
  name: string;
  type: ElementType;
  /** Dimensions; a dynamic dimension is -1. */
  shape: number[];
  /** Names of symbolic dimensions, where the model gives them. */
  dimNames: (string | undefined)[];
}

export interface ModelSignature {
  inputs: TensorSignature[];
  outputs: TensorSignature[];
}

/** True when the first dimension of every input and output is dynamic, so requests can be stacked into one batch. */
export function hasBatchDimension(signature: ModelSignature): boolean {
  return [...signature.inputs, ...signature.outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
}
