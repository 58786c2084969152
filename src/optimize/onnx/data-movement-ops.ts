/**
 * ONNX ops that only move, reshape or select data, with no arithmetic: neither quantizing them nor timing them says
 * anything about a model's compute. The quantizer and ORT's kernel profile each extend this list with their own.
 */
export const DATA_MOVEMENT_OPS: readonly string[] = [
  'Reshape',
  'Flatten',
  'Transpose',
  'Squeeze',
  'Unsqueeze',
  'Identity',
  'Shape',
  'Gather',
  'Slice',
  'Cast',
  'Constant',
  'Concat',
  'Split',
  'Expand',
];
