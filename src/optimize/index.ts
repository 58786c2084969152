/** The model-optimization library API: quantize/convert ONNX models, distil classifiers into smaller students, read and write them, load data sets. */
export {
  quantize,
  type QuantizeOptions,
  type QuantizeResult,
  type QuantizeMode,
  type DataSource,
} from './quantize/quantizer.ts';
export { QuantizeError, type QuantizeErrorCode } from './quantize/quantize-error.ts';
export type { CalibrationMethod } from './quantize/calibration.ts';
export { DEFAULT_FP16_BLOCK_LIST } from './fp16/fp16-converter.ts';
export { formatQuantizeReport, type QuantizeReport } from './evaluate/quantize-report.ts';
export { distill, type DistillOptions, type DistillResult, type DistillProgress } from './distill/distiller.ts';
export { DistillError, type DistillErrorCode } from './distill/distill-error.ts';
export { formatDistillReport, type DistillReport } from './distill/distill-report.ts';
export { parseStudentSpec, formatStudentSpec, type StudentSpec } from './distill/student-spec.ts';
export {
  decodeModel,
  encodeModel,
  readModelFile,
  writeModelFile,
  decodeTensor,
  encodeTensor,
  OnnxFormatError,
} from './onnx/model-io.ts';
export { GraphBuilder, tensorFromArray } from './onnx/graph-builder.ts';
export { GraphIndex } from './onnx/graph.ts';
export { inferValueTypes } from './onnx/shape-inference.ts';
export type { ModelProto, GraphProto, NodeProto, TensorProto } from './onnx/onnx-types.ts';
export { loadDataset, type Dataset, type DatasetSpec, type DatasetFormat } from './datasets/dataset.ts';
export { DatasetError } from './datasets/dataset-error.ts';
export { readFashionMnist, readIdxFile, FASHION_MNIST_LABELS } from './datasets/idx-reader.ts';
export { loadRequestData, RequestPipeline, type RequestDataOptions } from './datasets/request-data.ts';
export type { FeedSet } from './datasets/feed-set.ts';
export { judgeOptimization, DEFAULT_MAX_DROP, type GuardVerdict } from './evaluate/optimization-guard.ts';
export type { KernelSummary } from './evaluate/kernel-profile.ts';
