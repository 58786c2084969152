/*
 * The ONNX ops whose first output has the shape and element type of their first input, listed once for the two
 * analyses that walk graphs: shape inference (optimize/onnx/shape-inference.ts: the output's type is the input's)
 * and the batch-axis proof (runtime/batch-axis.ts: is output row i computed from input row i only?). Each adds
 * its own ops (type-changing casts and quantizers, convolutions, pools) to these.
 */

/**
 * Element-wise unary ops (parameters, if any, are constants or broadcast scalars): each output element is computed
 * from the input element at the same index, so the shape and element type are kept and row i of the output comes
 * from row i of the input alone.
 */
export const ELEMENTWISE_OPS: readonly string[] = [
  'Identity',
  'Dropout',
  'Relu',
  'LeakyRelu',
  'ThresholdedRelu',
  'Elu',
  'Selu',
  'Celu',
  'Gelu',
  'Mish',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Tanh',
  'Softplus',
  'Softsign',
  'Shrink',
  'Clip',
  'Abs',
  'Neg',
  'Sign',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Erf',
  'Floor',
  'Ceil',
  'Round',
  'Sin',
  'Cos',
  'Tan',
  'Asin',
  'Acos',
  'Atan',
  'Sinh',
  'Cosh',
  'Asinh',
  'Acosh',
  'Atanh',
  'BitwiseNot',
];

/**
 * Shape-preserving normalizations: the shape and element type are kept, but an output element depends on others
 * along the op's axis or axes (Softmax's `axis`, LayerNormalization's trailing axes, MeanVarianceNormalization's
 * `axes`: 0, 2, 3 by default), across channels (LRN), over each sample's spatial dims (InstanceNormalization) or,
 * in training mode, over the batch (BatchNormalization). Whether rows stay apart depends on those attributes.
 */
export const NORMALIZATION_OPS: readonly string[] = [
  'Softmax',
  'LogSoftmax',
  'Hardmax',
  'LpNormalization',
  'LayerNormalization',
  'MeanVarianceNormalization',
  'BatchNormalization',
  'InstanceNormalization',
  'LRN',
];
