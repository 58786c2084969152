import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadDataset, type Dataset, type DatasetSpec } from '../datasets/dataset.ts';
import { DatasetError } from '../datasets/dataset-error.ts';
import {
  checkFeedSet,
  feedSetFromDataset,
  feedsOf,
  isFeedSet,
  modelFixedBatch,
  sliceFeedSet,
  type FeedSet,
} from '../datasets/feed-set.ts';
import { modelInputs } from '../datasets/input-batch.ts';
import { profileKernels } from '../evaluate/kernel-profile.ts';
import { compareLatency, type LatencyComparison } from '../evaluate/latency.ts';
import { DEFAULT_MAX_DROP, judgeOptimization } from '../evaluate/optimization-guard.ts';
import { compareOutputs, type EvaluationTask, type ScoredBatch } from '../evaluate/output-comparison.ts';
import type { QuantizeReport } from '../evaluate/quantize-report.ts';
import { convertToFloat16 } from '../fp16/fp16-converter.ts';
import { opsetVersion } from '../onnx/graph.ts';
import { decodeModel, encodeModel, OnnxFormatError, readModelFile, writeModelFile } from '../onnx/model-io.ts';
import { TensorDataType } from '../onnx/onnx-schema.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { openSession, ortTensorFromProto, type OrtFeeds, type OrtSession } from '../onnx/ort-session.ts';
import { tensorByteLength } from '../onnx/tensor-values.ts';
import { calibrate, type CalibrationMethod } from './calibration.ts';
import { quantizeDynamic, type RewriteResult } from './dynamic-quantizer.ts';
import { NodeFilter } from './node-filter.ts';
import { QuantizeError } from './quantize-error.ts';
import { poolBeforeRelu, quantizeStatic, STATIC_OPS, staticTargets } from './static-quantizer.ts';
import { DATA_MOVEMENT_OPS } from '../onnx/data-movement-ops.ts';

export type QuantizeMode = 'dynamic' | 'static' | 'fp16';
/** Tensors as a data set (files of samples), or a FeedSet already built, e.g. from request rows by loadRequestData. */
export type DataSource = Dataset | DatasetSpec | string | FeedSet;

export interface QuantizeOptions {
  mode: QuantizeMode;
  /** One scale per output channel instead of one per tensor (dynamic, static). */
  perChannel?: boolean;
  /** 7-bit weights, for CPUs without VNNI (dynamic, static). */
  reduceRange?: boolean;
  /** Calibration data (static): see loadDataset. */
  calibration?: DataSource;
  method?: CalibrationMethod;
  /** Percentile kept by `method: 'percentile'` (default 99.999). */
  percentile?: number;
  /** Calibration samples used (default 512). */
  calibrationSamples?: number;
  /** Node names or op types left in float. */
  exclude?: string[];
  /** Static: convolutions summing fewer products per output value stay float (default MIN_CONV_REDUCTION, 16; 0 quantizes all). */
  minConvReduction?: number;
  /** Op types kept in float32 by fp16 mode (default DEFAULT_FP16_BLOCK_LIST). */
  blockOps?: string[];
  /** fp16: keep float32 inputs/outputs (default true). */
  keepIoTypes?: boolean;
  /** Evaluation data: output difference, and accuracy when it has labels. */
  eval?: DataSource;
  /** Evaluation samples used (default: all). */
  evalSamples?: number;
  /** How the eval data scores the first output: accuracy or MAE/RMSE (default auto: from the labels and the output's width). */
  task?: EvaluationTask;
  /**
   * The accuracy guard: the most the eval accuracy may drop, in points (classification), or the most the MAE may
   * rise, in per cent (regression); default 1.0. A model past it, or larger, or slower, is not written unless `force`.
   */
  maxDrop?: number;
  /** Write the model even when the guard fails (the report still says why it failed). */
  force?: boolean;
  /** Batch sizes timed before and after (default [1, 64]; [] skips timing). */
  latencyBatchSizes?: number[];
  /** Where to write the result (only after it loads and runs in ONNX Runtime). */
  output?: string;
  /** Write initializers to an external data file next to the output. */
  externalData?: boolean;
}

export interface QuantizeResult {
  model: ModelProto;
  bytes: Uint8Array;
  report: QuantizeReport;
}

/** Ops that mean a model is already quantized. */
const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'MatMulInteger',
  'ConvInteger',
  'QLinearMatMul',
  'QLinearConv',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
  'QGemm',
  'QLinearAdd',
  'QLinearMul',
]);
/** Ops that move or reshape data without arithmetic; not worth a "left in float" warning. */
const LAYOUT_OPS = new Set([...DATA_MOVEMENT_OPS, 'Dropout', 'Size', 'ConstantOfShape', 'Pad']);
/** Compute-heavy ops dynamic mode leaves in float, worth a warning (elementwise ops are not). */
const HEAVY_OPS = new Set(['Conv', 'ConvTranspose', 'LSTM', 'GRU', 'RNN', 'Attention', 'Einsum', 'MatMul', 'Gemm']);
const MAX_IR = 10;
const MAX_OPSET = 21;

function loadModel(input: string | ModelProto | Uint8Array): ModelProto {
  try {
    if (typeof input === 'string') return readModelFile(input);
    if (input instanceof Uint8Array) return decodeModel(input);
    return input;
  } catch (error) {
    if (error instanceof OnnxFormatError)
      throw new QuantizeError('CALIPER_QUANTIZE_NOT_ONNX', error.message, { cause: error });
    throw error;
  }
}

function checkModel(model: ModelProto, mode: QuantizeMode): void {
  const ir = model.irVersion ?? 0;
  const opset = opsetVersion(model);
  if (ir > MAX_IR)
    throw new QuantizeError(
      'CALIPER_QUANTIZE_UNSUPPORTED_MODEL',
      `model IR version ${ir} is newer than the supported ${MAX_IR}`,
    );
  if (opset > MAX_OPSET)
    throw new QuantizeError(
      'CALIPER_QUANTIZE_UNSUPPORTED_MODEL',
      `model opset ${opset} is newer than the supported ${MAX_OPSET}`,
    );
  const nodes = model.graph?.node ?? [];
  const quantizedOps = [...new Set(nodes.map((n) => n.opType ?? '').filter((op) => QUANTIZED_OPS.has(op)))];
  const int8Weights = (model.graph?.initializer ?? []).filter((t) => t.dataType === TensorDataType.INT8).length;
  if (quantizedOps.length > 0 || int8Weights > 0) {
    throw new QuantizeError(
      'CALIPER_QUANTIZE_ALREADY_QUANTIZED',
      `model is already quantized (${quantizedOps.length ? `contains ${quantizedOps.join(', ')}` : `${int8Weights} int8 initializers`}); quantize the float32 original instead`,
    );
  }
  const initializers = model.graph?.initializer ?? [];
  const bytesOf = (type: number) =>
    initializers.filter((t) => t.dataType === type).reduce((a, t) => a + tensorByteLength(t), 0);
  if (mode === 'fp16' && bytesOf(TensorDataType.FLOAT16) > 0 && bytesOf(TensorDataType.FLOAT) === 0) {
    throw new QuantizeError('CALIPER_QUANTIZE_ALREADY_QUANTIZED', 'model weights are already float16');
  }
  if (mode !== 'fp16' && bytesOf(TensorDataType.FLOAT16) > bytesOf(TensorDataType.FLOAT)) {
    throw new QuantizeError(
      'CALIPER_QUANTIZE_UNSUPPORTED_MODEL',
      'model weights are float16; INT8 quantization starts from a float32 model',
    );
  }
}

async function resolveData(
  source: DataSource | undefined,
  model: ModelProto,
  purpose: 'calibration' | 'eval',
  limit?: number,
): Promise<FeedSet | undefined> {
  if (source === undefined) return undefined;
  const code = purpose === 'calibration' ? 'CALIPER_QUANTIZE_CALIBRATION_DATA' : 'CALIPER_QUANTIZE_EVAL_DATA';
  try {
    let data: FeedSet;
    if (isFeedSet(source)) data = source;
    else {
      const dataset = typeof source === 'object' && 'features' in source ? source : await loadDataset(source);
      data = feedSetFromDataset(dataset, model, purpose);
    }
    if (limit !== undefined && limit < data.count) data = sliceFeedSet(data, 0, limit);
    checkFeedSet(data, model, purpose);
    return data;
  } catch (error) {
    if (error instanceof DatasetError || (error as NodeJS.ErrnoException).code === 'ENOENT' || error instanceof Error) {
      throw new QuantizeError(code, `${purpose} data: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  }
}

/** Deterministic inputs from the model's declared inputs when no data set is given (symbolic dims → batch, then 1). */
function syntheticFeeds(model: ModelProto, batch: number): OrtFeeds {
  const feeds: OrtFeeds = {};
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (const input of modelInputs(model)) {
    const dims = input.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? batch : 1));
    const count = dims.reduce((a, b) => a * b, 1);
    const type = input.elemType;
    const raw = new Uint8Array(count * (type === TensorDataType.INT64 ? 8 : type === TensorDataType.FLOAT ? 4 : 1));
    const tensor = { dims, dataType: type, rawData: raw };
    if (type === TensorDataType.FLOAT)
      new Float32Array(raw.buffer).forEach((_, i, a) => {
        a[i] = random();
      });
    feeds[input.name] = ortTensorFromProto(tensor);
  }
  return feeds;
}

function batchesOf(data: FeedSet, model: ModelProto, batchSize: number): ScoredBatch[] {
  const fixed = modelFixedBatch(model);
  const size = fixed ?? batchSize;
  const batches: ScoredBatch[] = [];
  for (let start = 0; start + (fixed ?? 1) <= data.count; start += size) {
    const rows = Math.min(size, data.count - start);
    batches.push({
      feeds: feedsOf(data, start, rows),
      rows,
      ...(data.labels ? { labels: data.labels.subarray(start, start + rows) } : {}),
      ...(data.targets ? { targets: data.targets.subarray(start, start + rows) } : {}),
    });
  }
  return batches;
}

function floatOpCounts(mode: QuantizeMode, original: ModelProto, converted: RewriteResult): Record<string, number> {
  const counts: Record<string, number> = {};
  const convertedSet = new Set(converted.quantizedNodes);
  const covered = mode === 'dynamic' ? new Set(['MatMul', 'Gemm']) : mode === 'static' ? STATIC_OPS : undefined;
  for (const node of original.graph?.node ?? []) {
    const op = node.opType ?? '';
    const label = node.name || `${op}:${node.output?.[0]}`;
    if (LAYOUT_OPS.has(op) || convertedSet.has(label)) continue;
    if (mode === 'fp16') {
      if (converted.skipped.some((s) => s.node === label)) counts[op] = (counts[op] ?? 0) + 1;
      continue;
    }
    if (!covered!.has(op) || converted.skipped.some((s) => s.node === label)) counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}

/** Loads the result in ONNX Runtime and runs it; anything that fails here is never written. */
async function openChecked(bytes: Uint8Array, feeds: OrtFeeds, reference: OrtSession): Promise<OrtSession> {
  let session: OrtSession;
  try {
    session = await openSession(bytes);
  } catch (error) {
    throw new QuantizeError(
      'CALIPER_QUANTIZE_BROKEN_OUTPUT',
      `the converted model does not load in ONNX Runtime, so it was not written: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  try {
    const [expected, actual] = [await reference.run(feeds), await session.run(feeds)];
    for (const name of reference.outputNames) {
      if (!actual[name]) throw new Error(`output ${name} is missing`);
      if (actual[name].dims.join() !== expected[name]!.dims.join())
        throw new Error(`output ${name} has shape [${actual[name].dims}], expected [${expected[name]!.dims}]`);
      const data = actual[name].data;
      if (
        actual[name].type === 'float32' &&
        Array.from(data as Float32Array).some(
          (v, i) => !Number.isFinite(v) && Number.isFinite((expected[name]!.data as Float32Array)[i]!),
        )
      ) {
        throw new Error(`output ${name} holds non-finite values the original does not`);
      }
    }
  } catch (error) {
    await session.release();
    throw new QuantizeError(
      'CALIPER_QUANTIZE_BROKEN_OUTPUT',
      `the converted model fails on a sample, so it was not written: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  return session;
}

/**
 * Quantizes (dynamic or static INT8) or converts (fp16) a float32 ONNX model, checks the result in ONNX
 * Runtime, measures it against the original and writes it when `output` is given.
 */
export async function quantize(
  input: string | ModelProto | Uint8Array,
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  const { mode } = options;
  if (!['dynamic', 'static', 'fp16'].includes(mode))
    throw new QuantizeError(
      'CALIPER_QUANTIZE_INVALID_OPTIONS',
      `mode must be dynamic, static or fp16, got ${String(mode)}`,
    );
  const method = options.method ?? 'minmax';
  if (!['minmax', 'percentile', 'entropy'].includes(method))
    throw new QuantizeError(
      'CALIPER_QUANTIZE_INVALID_OPTIONS',
      `method must be minmax, percentile or entropy, got ${method}`,
    );
  if (
    options.maxDrop !== undefined &&
    !(typeof options.maxDrop === 'number' && options.maxDrop >= 0 && Number.isFinite(options.maxDrop))
  ) {
    throw new QuantizeError(
      'CALIPER_QUANTIZE_INVALID_OPTIONS',
      `max drop must be a number >= 0 (accuracy points, or per cent of MAE for regression), got ${String(options.maxDrop)}`,
    );
  }
  if (options.task !== undefined && !['auto', 'classification', 'regression'].includes(options.task)) {
    throw new QuantizeError(
      'CALIPER_QUANTIZE_INVALID_OPTIONS',
      `task must be auto, classification or regression, got ${String(options.task)}`,
    );
  }
  const model = loadModel(input);
  checkModel(model, mode);
  const originalBytes = encodeModel(model);
  const filter = new NodeFilter(options.exclude);
  let reference: OrtSession;
  try {
    reference = await openSession(originalBytes);
  } catch (error) {
    throw new QuantizeError(
      'CALIPER_QUANTIZE_UNSUPPORTED_MODEL',
      `the input model does not load in ONNX Runtime: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  const warnings: string[] = [];
  if (mode !== 'static' && options.calibration !== undefined)
    warnings.push(`calibration data is ignored: ${mode} mode does not calibrate`);
  const unmatched = filter.unmatched(model.graph?.node ?? []);
  if (unmatched.length) warnings.push(`--exclude matches no node name or op type: ${unmatched.join(', ')}`);

  const evalData = await resolveData(options.eval, model, 'eval', options.evalSamples);
  let converted: RewriteResult;
  if (mode === 'dynamic') {
    converted = quantizeDynamic(model, {
      perChannel: options.perChannel ?? false,
      reduceRange: options.reduceRange ?? false,
      filter,
    });
  } else if (mode === 'static') {
    if (options.calibration === undefined) {
      throw new QuantizeError(
        'CALIPER_QUANTIZE_CALIBRATION_DATA',
        'static quantization needs calibration data (--calibration DATA: fashion-mnist:SPLIT, IDX, .parquet, .csv or .pb samples matching the model input)',
      );
    }
    const calibration = (await resolveData(
      options.calibration,
      model,
      'calibration',
      options.calibrationSamples ?? 512,
    ))!;
    const reordered = poolBeforeRelu(model, filter, options.minConvReduction);
    for (const m of reordered.moved)
      warnings.push(`${m} of a float convolution (same result; the pool stays float, int8 starts after it)`);
    const { tensors } = staticTargets(reordered.model, filter, options.minConvReduction);
    const ranges = await calibrate(reordered.model, tensors, calibration, {
      method,
      ...(options.percentile !== undefined ? { percentile: options.percentile } : {}),
    });
    converted = quantizeStatic(reordered.model, ranges, {
      perChannel: options.perChannel ?? false,
      reduceRange: options.reduceRange ?? false,
      filter,
      ...(options.minConvReduction !== undefined ? { minConvReduction: options.minConvReduction } : {}),
    });
  } else {
    converted = convertToFloat16(model, {
      filter,
      ...(options.blockOps ? { blockOps: options.blockOps } : {}),
      ...(options.keepIoTypes !== undefined ? { keepIoTypes: options.keepIoTypes } : {}),
    });
  }
  if (converted.quantizedNodes.length === 0) {
    const ops = [...new Set((model.graph?.node ?? []).map((n) => n.opType))].join(', ');
    const what =
      mode === 'dynamic'
        ? 'MatMul or Gemm nodes with constant weights'
        : mode === 'static'
          ? `nodes of type ${[...STATIC_OPS].join(', ')}`
          : 'float32 nodes outside the block list';
    const reasons = converted.skipped.map((s) => `${s.node}: ${s.reason}`).join('; ');
    throw new QuantizeError(
      'CALIPER_QUANTIZE_NOTHING_TO_DO',
      `nothing to convert: ${mode} mode needs ${what}; the model has ${ops || 'no nodes'}${reasons ? ` (${reasons})` : ''}`,
    );
  }
  const result = converted.model;
  const newOpset = opsetVersion(result);
  const oldOpset = opsetVersion(model);
  if (newOpset !== oldOpset) warnings.push(`opset raised from ${oldOpset} to ${newOpset} for the emitted ops`);
  result.irVersion = Math.min(
    MAX_IR,
    Math.max(result.irVersion ?? 0, newOpset >= 21 ? 10 : newOpset >= 19 ? 9 : newOpset >= 15 ? 8 : 7),
  );
  result.producerName = 'caliper';
  for (const s of converted.skipped)
    if (s.reason !== 'excluded') warnings.push(`${s.node} left in float32: ${s.reason}`);
  for (const w of converted.warnings ?? []) warnings.push(w);
  const floatOps = floatOpCounts(mode, model, converted);
  const unsupported = Object.keys(floatOps).filter(
    (op) => !LAYOUT_OPS.has(op) && (mode !== 'dynamic' || HEAVY_OPS.has(op)),
  );
  if (unsupported.length) warnings.push(`ops left in float32 (not covered by ${mode} mode): ${unsupported.join(', ')}`);
  const bytes = encodeModel(result);

  const firstBatch = evalData ? batchesOf(evalData, model, 8)[0] : undefined;
  if (evalData && !firstBatch) {
    await reference.release();
    throw new QuantizeError(
      'CALIPER_QUANTIZE_EVAL_DATA',
      `eval data ${evalData.source} holds ${evalData.count} samples, fewer than the model's fixed batch size`,
    );
  }
  const sampleFeeds = firstBatch ? firstBatch.feeds : syntheticFeeds(model, 8);
  const checked = await openChecked(bytes, sampleFeeds, reference);
  try {
    const batches = evalData
      ? batchesOf(evalData, model, 256)
      : [{ feeds: sampleFeeds, rows: Object.values(sampleFeeds)[0]?.dims[0] ?? 1 }];
    const { difference, accuracy, regression } = await compareOutputs(
      reference,
      checked,
      batches,
      options.task ?? 'auto',
    );
    if ((difference.nonFinite ?? 0) > 0)
      warnings.push(
        `the converted model answers ${difference.nonFinite} NaN or infinite output value(s) where the original's are finite (on ${evalData ? evalData.source : 'synthetic inputs'})`,
      );
    const latency: LatencyComparison[] = [];
    const fixed = modelFixedBatch(model);
    const requested = options.latencyBatchSizes ?? [1, 64];
    if (fixed !== undefined && requested.some((b) => b !== fixed))
      warnings.push(`latency measured at the model's fixed batch size ${fixed} only`);
    for (const batchSize of fixed !== undefined && requested.length ? [fixed] : requested) {
      const feeds =
        evalData && evalData.count >= batchSize ? feedsOf(evalData, 0, batchSize) : syntheticFeeds(model, batchSize);
      latency.push(await compareLatency(reference, checked, feeds, batchSize));
    }
    const kernels = mode !== 'fp16' ? await profileKernels(bytes, sampleFeeds) : undefined;
    const afterBytes = bytes.length;
    const maxDrop = options.maxDrop ?? DEFAULT_MAX_DROP;
    const verdict = judgeOptimization(
      {
        ...(accuracy ? { accuracy } : {}),
        ...(regression ? { regression } : {}),
        size: { beforeBytes: originalBytes.length, afterBytes },
        latency,
      },
      maxDrop,
    );
    const write = options.output !== undefined && (verdict.passed || options.force === true);
    const report: QuantizeReport = {
      mode,
      settings: {
        ...(mode !== 'fp16'
          ? { perChannel: options.perChannel ?? false, reduceRange: options.reduceRange ?? false }
          : { keepIoTypes: options.keepIoTypes ?? true, blockOps: options.blockOps ?? ['default'] }),
        ...(mode === 'static' ? { method } : {}),
        exclude: options.exclude ?? [],
      },
      size: { beforeBytes: originalBytes.length, afterBytes, ratio: afterBytes / originalBytes.length },
      convertedNodes: converted.quantizedNodes.length,
      floatOps,
      ...(kernels ? { kernels } : {}),
      warnings,
      outputDifference: { ...difference, source: evalData ? evalData.source : 'synthetic uniform [0, 1) inputs' },
      ...(accuracy ? { accuracy: { ...accuracy, source: evalData!.source } } : {}),
      ...(regression ? { regression: { ...regression, source: evalData!.source } } : {}),
      latency,
      guard: { ...verdict, forced: !verdict.passed && options.force === true, written: write },
      opset: newOpset,
      irVersion: result.irVersion,
    };
    if (write) {
      mkdirSync(dirname(options.output!), { recursive: true });
      writeModelFile(options.output!, result, options.externalData ? { externalData: true } : {});
    }
    return { model: result, bytes, report };
  } finally {
    await checked.release();
    await reference.release();
  }
}
