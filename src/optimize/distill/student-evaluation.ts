import { sampleSize, type Dataset } from '../datasets/dataset.ts';
import { classDecision, type ClassDecision } from '../evaluate/output-comparison.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { float32Tensor, openSession, tensorAsFloat32, type OrtSession } from '../onnx/ort-session.ts';
import { quantize } from '../quantize/quantizer.ts';
import type { ModelFigures } from './distill-report.ts';

/** Accuracy on the labels (absent without labels) and agreement with the teacher's classes. */
export type Score = Pick<ModelFigures, 'accuracy' | 'agreement'>;

/** Accuracy and agreement with the teacher's classes of a model run in ONNX Runtime. */
async function scoreModel(
  session: OrtSession,
  data: Dataset,
  sampleShape: number[],
  teacherClasses: Int32Array | undefined,
): Promise<{ accuracy?: number; agreement: number; classes: Int32Array }> {
  const size = sampleSize(data);
  const classes = new Int32Array(data.count);
  const [input, output] = [session.inputNames[0]!, session.outputNames[0]!];
  let decision: ClassDecision | undefined;
  for (let start = 0; start < data.count; start += 1024) {
    const rows = Math.min(1024, data.count - start);
    const out = await session.run({
      [input]: float32Tensor(data.features.subarray(start * size, (start + rows) * size), [rows, ...sampleShape]),
    });
    const values = tensorAsFloat32(out[output]!);
    // [N, C] logits by argmax; a binary model's [N, 1] probability against 0.5.
    decision ??= classDecision(values, rows);
    classes.set(decision.classes(values, rows), start);
  }
  let correct = 0;
  let agree = 0;
  for (let i = 0; i < data.count; i++) {
    if (data.labels && classes[i] === data.labels[i]) correct++;
    if (!teacherClasses || classes[i] === teacherClasses[i]) agree++;
  }
  return { ...(data.labels ? { accuracy: correct / data.count } : {}), agreement: agree / data.count, classes };
}

function parameterCount(model: ModelProto): number {
  return (model.graph?.initializer ?? []).reduce((n, t) => n + (t.dims ?? []).reduce((a, b) => a * Number(b), 1), 0);
}

/**
 * Scores models on one evaluation set (`data`, samples of `sampleShape`) against the teacher: built by scoring the
 * teacher itself, whose classes every student's agreement is counted on.
 */
export class StudentScorer {
  private constructor(
    private readonly data: Dataset,
    private readonly sampleShape: number[],
    private readonly teacherClasses: Int32Array,
    /** The teacher's row: its accuracy, agreement 1, parameters and size. */
    readonly teacher: ModelFigures,
  ) {}

  /** Scores the teacher (`session` running `model`, `sizeBytes` long) on `data`. Throws ONNX Runtime's errors. */
  static async create(
    session: OrtSession,
    model: ModelProto,
    sizeBytes: number,
    data: Dataset,
    sampleShape: number[],
  ): Promise<StudentScorer> {
    const score = await scoreModel(session, data, sampleShape, undefined);
    const teacher: ModelFigures = {
      ...(score.accuracy !== undefined ? { accuracy: score.accuracy } : {}),
      agreement: 1,
      parameters: parameterCount(model),
      sizeBytes,
    };
    return new StudentScorer(data, sampleShape, score.classes, teacher);
  }

  /** Accuracy and agreement with the teacher of the model `session` runs. */
  async score(session: OrtSession): Promise<Score> {
    const { accuracy, agreement } = await scoreModel(session, this.data, this.sampleShape, this.teacherClasses);
    return { ...(accuracy !== undefined ? { accuracy } : {}), agreement };
  }
}

/**
 * The INT8 row of a QAT student: `bytes` quantized as `caliper quantize --mode dynamic --per-channel` does, then
 * scored. The session it opens is handed to `keep` (the caller releases it).
 */
export async function int8Figures(
  bytes: Uint8Array,
  parameters: number,
  scorer: StudentScorer,
  keep: (session: OrtSession) => void,
): Promise<ModelFigures> {
  const quantized = await quantize(bytes, { mode: 'dynamic', perChannel: true, latencyBatchSizes: [] });
  const session = await openSession(quantized.bytes, { intraOpNumThreads: 1 });
  keep(session);
  return { ...(await scorer.score(session)), parameters, sizeBytes: quantized.bytes.length };
}
