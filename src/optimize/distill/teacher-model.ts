import { sampleSize, type Dataset } from '../datasets/dataset.ts';
import { DatasetError } from '../datasets/dataset-error.ts';
import { sampleShapeFor, type ModelInput } from '../datasets/input-batch.ts';
import { decodeModel, OnnxFormatError } from '../onnx/model-io.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { float32Tensor, openSession, tensorAsFloat32, type OrtSession } from '../onnx/ort-session.ts';
import { DistillError } from './distill-error.ts';

/** A teacher ONNX model opened in ONNX Runtime, with the input it is fed and the output used as logits. */
export interface Teacher {
  model: ModelProto;
  bytes: Uint8Array;
  session: OrtSession;
  input: ModelInput;
  /** One sample's shape as the teacher's input takes it (no batch dimension). */
  sampleShape: number[];
  output: string;
  classes: number;
  /** The output is a softmax: its log is used as logits (log-probabilities differ from logits by a per-row constant). */
  probabilities: boolean;
  /**
   * The output is one probability per row ([N, 1], a binary classifier such as the fraud model): it is read as two
   * classes with log-probabilities [log(1 − p), log(p)], and the student answers in the same [N, 1] form.
   */
  binary: boolean;
  warnings: string[];
}

const FLOAT_TYPES = new Set([1, 10, 11]);

function describeOutputs(model: ModelProto): string {
  return (
    (model.graph?.output ?? [])
      .map((o) => {
        const dims = (o.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue ?? d.dimParam ?? '?');
        return `${o.name} (ONNX type ${o.type?.tensorType?.elemType ?? '?'}, [${dims.join(', ')}])`;
      })
      .join(', ') || 'none'
  );
}

/** Rows that each look like a probability distribution (non-negative, summing to 1). */
function looksLikeProbabilities(values: Float32Array, rows: number): boolean {
  const width = values.length / rows;
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < width; c++) {
      const v = values[r * width + c]!;
      if (v < 0 || v > 1) return false;
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-4) return false;
  }
  return true;
}

/**
 * Opens the teacher and checks, before any training, that the data fits its input and that it has a
 * logits-like output: floating point, shaped [N, C] with C ≥ 2 classes. A softmax output is accepted and
 * turned into log-probabilities; labels, scores of one unit or higher-rank maps are refused.
 */
export async function openTeacher(bytes: Uint8Array, data: Dataset, threads: number): Promise<Teacher> {
  let model: ModelProto;
  try {
    model = decodeModel(bytes);
  } catch (error) {
    if (error instanceof OnnxFormatError)
      throw new DistillError('CALIPER_DISTILL_TEACHER', `teacher: ${error.message}`, { cause: error });
    throw error;
  }
  let fit: ReturnType<typeof sampleShapeFor>;
  try {
    fit = sampleShapeFor(data, model, 'training');
  } catch (error) {
    if (error instanceof DatasetError)
      throw new DistillError('CALIPER_DISTILL_DATA', `teacher/data mismatch: ${error.message}`, { cause: error });
    throw error;
  }
  const outputs = model.graph?.output ?? [];
  const candidates = outputs.filter((o) => {
    const type = o.type?.tensorType;
    const dims = type?.shape?.dim;
    if (!FLOAT_TYPES.has(type?.elemType ?? 0)) return false;
    if (!dims) return true;
    const classes = dims[1]?.dimValue;
    return dims.length === 2 && (classes === undefined || classes === null || classes >= 1);
  });
  if (candidates.length === 0) {
    throw new DistillError(
      'CALIPER_DISTILL_TEACHER',
      `the teacher has no logits-like output: expected a float output shaped [N, C] with C ≥ 2 classes, or [N, 1] probabilities; its outputs are ${describeOutputs(model)}`,
    );
  }
  const output = candidates[0]!.name!;
  let session: OrtSession;
  try {
    session = await openSession(bytes, { intraOpNumThreads: threads });
  } catch (error) {
    throw new DistillError(
      'CALIPER_DISTILL_TEACHER',
      `the teacher does not load in ONNX Runtime: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  const rows = Math.min(data.count, 16);
  const size = sampleSize(data);
  let sample: Float32Array;
  let dims: readonly number[];
  try {
    const result = await session.run(
      { [fit.input.name]: float32Tensor(data.features.slice(0, rows * size), [rows, ...fit.sampleShape]) },
      [output],
    );
    sample = tensorAsFloat32(result[output]!);
    dims = result[output]!.dims;
  } catch (error) {
    await session.release();
    throw new DistillError(
      'CALIPER_DISTILL_TEACHER',
      `the teacher fails on the training data: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  const binary = dims.length === 2 && dims[1] === 1 && sample.every((v) => v >= 0 && v <= 1);
  if (dims.length !== 2 || dims[0] !== rows || (dims[1]! < 2 && !binary)) {
    await session.release();
    throw new DistillError(
      'CALIPER_DISTILL_TEACHER',
      `teacher output ${output} is not logits-like: expected [N, C] with C ≥ 2 classes, or [N, 1] probabilities, got [${dims.join(', ')}] for ${rows} samples`,
    );
  }
  if (binary) {
    const warnings = [
      `teacher output ${output} is one probability per row: distilled as two classes, and the student answers [N, 1] probabilities too`,
    ];
    return {
      model,
      bytes,
      session,
      input: fit.input,
      sampleShape: fit.sampleShape,
      output,
      classes: 2,
      probabilities: true,
      binary,
      warnings,
    };
  }
  const producer = (model.graph?.node ?? []).find((n) => n.output?.includes(output));
  const probabilities = producer?.opType === 'Softmax' || looksLikeProbabilities(sample, rows);
  const warnings = probabilities
    ? [`teacher output ${output} holds probabilities (softmax); its logarithm is used as the teacher's logits`]
    : [];
  if (outputs.length > 1) warnings.push(`the teacher has ${outputs.length} outputs; ${output} is used as its logits`);
  return {
    model,
    bytes,
    session,
    input: fit.input,
    sampleShape: fit.sampleShape,
    output,
    classes: dims[1]!,
    probabilities,
    binary: false,
    warnings,
  };
}

/** The teacher's logits for every sample, computed once in large batches (the cache every epoch reads). */
export async function teacherLogits(
  teacher: Teacher,
  data: Dataset,
  batchSize = 1024,
  onProgress?: (done: number) => void,
): Promise<Float32Array> {
  const size = sampleSize(data);
  const out = new Float32Array(data.count * teacher.classes);
  for (let start = 0; start < data.count; start += batchSize) {
    const rows = Math.min(batchSize, data.count - start);
    const features = data.features.subarray(start * size, (start + rows) * size);
    out.set(await teacherBatchLogits(teacher, features, rows), start * teacher.classes);
    onProgress?.(start + rows);
  }
  return out;
}

/**
 * The teacher's logits [rows, classes] for one batch of flat samples (`rows` × the teacher's sample shape):
 * probabilities become log-probabilities, a binary [N, 1] probability becomes [log(1 − p), log(p)].
 */
export async function teacherBatchLogits(
  teacher: Teacher,
  features: Float32Array,
  rows: number,
): Promise<Float32Array> {
  const feeds = { [teacher.input.name]: float32Tensor(features, [rows, ...teacher.sampleShape]) };
  const values = tensorAsFloat32((await teacher.session.run(feeds, [teacher.output]))[teacher.output]!);
  if (teacher.binary) {
    const out = new Float32Array(rows * 2);
    for (let i = 0; i < rows; i++) {
      out[i * 2] = Math.log(Math.max(1 - values[i]!, 1e-30));
      out[i * 2 + 1] = Math.log(Math.max(values[i]!, 1e-30));
    }
    return out;
  }
  if (teacher.probabilities) return values.map((v) => Math.log(Math.max(v, 1e-30)));
  return values;
}
