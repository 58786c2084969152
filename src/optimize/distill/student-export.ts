import { GraphBuilder, tensorFromArray } from '../onnx/graph-builder.ts';
import { encodeModel } from '../onnx/model-io.ts';
import { AttributeType, TensorDataType } from '../onnx/onnx-schema.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { float32Tensor, openSession } from '../onnx/ort-session.ts';
import { DistillError } from './distill-error.ts';
import { CONV_KERNEL, type StudentModel } from './student-model.ts';
import { formatStudentSpec } from './student-spec.ts';

const FLOAT = TensorDataType.FLOAT;
export const STUDENT_OUTPUT = 'logits';

/** tfjs HWIO conv kernel [kh, kw, in, out] → ONNX OIHW [out, in, kh, kw]. */
function oihw(hwio: Float32Array, kh: number, kw: number, inC: number, outC: number): Float32Array {
  const out = new Float32Array(hwio.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < inC; i++)
        for (let o = 0; o < outC; o++) {
          out[((o * inC + i) * kh + y) * kw + x] = hwio[((y * kw + x) * inC + i) * outC + o]!;
        }
  return out;
}

/**
 * The student as a float32 ONNX model (opset 17) with the teacher's input name and per-sample shape, so
 * the same feeds drive both: Gemm (weights [in, out]) + Relu for dense layers; a Reshape to NCHW when the
 * input is flat, then Conv (pads 1) + Relu + MaxPool 2×2 and a Flatten for CNN students.
 */
export function exportStudent(student: StudentModel, inputName: string): ModelProto {
  const b = new GraphBuilder(`student_${formatStudentSpec(student.spec).replace(/[^a-z0-9]+/gi, '_')}`, 17);
  let h = b.input({ name: inputName, elemType: FLOAT, shape: ['N', ...student.sampleShape] });
  if (student.image && student.sampleShape.length !== 3) {
    const { channels, height, width } = student.image;
    const shape = b.initializer(
      tensorFromArray('image_shape', [4], new BigInt64Array([-1n, BigInt(channels), BigInt(height), BigInt(width)])),
    );
    [h] = b.node('Reshape', [h, shape]);
  } else if (!student.image && student.sampleShape.length !== 1) {
    [h] = b.node('Flatten', [h], { axis: 1 });
  }
  let flat = !student.image;
  student.layers.forEach((layer, index) => {
    const [kernel, bias] = [layer.kernel.dataSync() as Float32Array, layer.bias.dataSync() as Float32Array];
    const last = index === student.layers.length - 1;
    if (layer.kind === 'conv') {
      const [kh, kw, inC, outC] = layer.kernel.shape;
      const w = b.initializer(
        tensorFromArray(`conv${index}.weight`, [outC, inC, kh, kw], oihw(kernel, kh, kw, inC, outC)),
      );
      const c = b.initializer(tensorFromArray(`conv${index}.bias`, [outC], bias));
      const pad = (CONV_KERNEL - 1) / 2;
      [h] = b.node('Conv', [h!, w, c], { kernel_shape: [kh, kw], pads: [pad, pad, pad, pad], strides: [1, 1] });
      [h] = b.node('Relu', [h!]);
      [h] = b.node('MaxPool', [h!], { kernel_shape: [2, 2], strides: [2, 2] });
    } else {
      if (!flat) {
        [h] = b.node('Flatten', [h!], { axis: 1 });
        flat = true;
      }
      const [fanIn, fanOut] = layer.kernel.shape;
      const w = b.initializer(tensorFromArray(`fc${index}.weight`, [fanIn, fanOut], kernel));
      const c = b.initializer(tensorFromArray(`fc${index}.bias`, [fanOut], bias));
      [h] = b.node('Gemm', [h!, w, c], {}, last ? [STUDENT_OUTPUT] : undefined);
      if (layer.relu) [h] = b.node('Relu', [h!]);
    }
  });
  b.output({ name: STUDENT_OUTPUT, elemType: FLOAT, shape: ['N', student.classes] });
  return b.build('caliper-distill');
}

/**
 * A student of a binary teacher answering like it: softmax over its two logits, the second column kept, as
 * [N, 1] probabilities under the teacher's output name (so the teacher's model.yaml postprocess reads it).
 */
export function withProbabilityHead(model: ModelProto, outputName: string): ModelProto {
  const graph = model.graph!;
  const logits = graph.output![0]!.name!;
  const starts = tensorFromArray('head_starts', [1], new BigInt64Array([1n]));
  const ends = tensorFromArray('head_ends', [1], new BigInt64Array([2n]));
  const axes = tensorFromArray('head_axes', [1], new BigInt64Array([1n]));
  const softmax = `${logits}_softmax`;
  return {
    ...model,
    graph: {
      ...graph,
      node: [
        ...(graph.node ?? []),
        {
          name: 'head_Softmax',
          opType: 'Softmax',
          input: [logits],
          output: [softmax],
          attribute: [{ name: 'axis', type: AttributeType.INT, i: 1 }],
        },
        {
          name: 'head_Slice',
          opType: 'Slice',
          input: [softmax, 'head_starts', 'head_ends', 'head_axes'],
          output: [outputName],
        },
      ],
      initializer: [...(graph.initializer ?? []), starts, ends, axes],
      output: [
        {
          name: outputName,
          type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 1 }] } } },
        },
      ],
    },
  };
}

/**
 * Runs the exported model in ONNX Runtime on `count` samples and compares its logits with the trained
 * tfjs model's float logits, as numpy's allclose does: |ort − tfjs| ≤ tolerance + tolerance × |tfjs|.
 * The relative part matters because the two runtimes sum dot products in different orders, which moves a
 * logit of 20 by a few float32 ulps (~2e-6 each). Throws on any larger difference; returns the largest
 * absolute difference.
 */
export async function verifyExport(
  student: StudentModel,
  model: ModelProto,
  features: Float32Array,
  count: number,
  tolerance = 1e-5,
): Promise<number> {
  const session = await openSession(encodeModel(model));
  try {
    const size = features.length / count;
    const inputName = session.inputNames[0]!;
    const out = await session.run({
      [inputName]: float32Tensor(features.subarray(0, count * size), [count, ...student.sampleShape]),
    });
    const actual = out[STUDENT_OUTPUT]!.data as Float32Array;
    const expected = student.predict(features, count);
    let maxAbs = 0;
    let worst = -1;
    for (let i = 0; i < expected.length; i++) {
      const diff = Math.abs(actual[i]! - expected[i]!);
      maxAbs = Math.max(maxAbs, diff);
      if (!(diff <= tolerance * (1 + Math.abs(expected[i]!))))
        worst = worst < 0 || diff > Math.abs(actual[worst]! - expected[worst]!) ? i : worst;
    }
    if (worst >= 0 || actual.length !== expected.length) {
      const at = Math.max(worst, 0);
      throw new DistillError(
        'CALIPER_DISTILL_EXPORT_MISMATCH',
        `the exported student's outputs differ from the trained model's: ${actual[at]} vs ${expected[at]} (tolerance ${tolerance} absolute + ${tolerance} relative); the model was not written`,
      );
    }
    return maxAbs;
  } finally {
    await session.release();
  }
}
