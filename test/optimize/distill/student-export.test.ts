import { beforeAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../../../src/optimize/onnx/model-io.ts';
import { float32Tensor, openSession } from '../../../src/optimize/onnx/ort-session.ts';
import { exportStudent, STUDENT_OUTPUT, verifyExport } from '../../../src/optimize/distill/student-export.ts';
import { StudentModel } from '../../../src/optimize/distill/student-model.ts';
import { parseStudentSpec } from '../../../src/optimize/distill/student-spec.ts';
import { useWasmBackend } from '../../../src/optimize/distill/wasm-backend.ts';

function randomInputs(count: number, size: number, seed = 3): Float32Array {
  let state = seed;
  return Float32Array.from({ length: count * size }, () => (state = (state * 48271) % 2147483647) / 2147483647);
}

async function maxDifference(student: StudentModel, inputs: Float32Array, count: number): Promise<number> {
  const session = await openSession(encodeModel(exportStudent(student, 'x')));
  const out = await session.run({ x: float32Tensor(inputs, [count, ...student.sampleShape]) });
  await session.release();
  const actual = out[STUDENT_OUTPUT]!.data as Float32Array;
  const expected = student.predict(inputs, count);
  expect(actual.length).toBe(expected.length);
  return Math.max(...Array.from(expected, (v, i) => Math.abs(v - actual[i]!)));
}

describe('student export', () => {
  beforeAll(() => useWasmBackend());

  it.each([
    ['mlp:16,8', [36]],
    ['mlp:', [36]],
    ['mlp:12', [2, 3, 6]],
    ['cnn:4,6/10', [64]],
    ['cnn:3', [2, 6, 6]],
    ['cnn:4', [7, 9]],
  ] as const)('%s on samples %j runs in ONNX Runtime with the trained outputs (within 1e-5)', async (spec, shape) => {
    const student = StudentModel.create(parseStudentSpec(spec), shape, 5, 11);
    const size = shape.reduce((a, b) => a * b, 1);
    const inputs = randomInputs(9, size);
    expect(await maxDifference(student, inputs, 9)).toBeLessThanOrEqual(1e-5);
    expect(await verifyExport(student, exportStudent(student, 'x'), inputs, 9)).toBeLessThanOrEqual(1e-5);
    student.dispose();
  });

  it('a cnn student needs image-shaped samples', () => {
    expect(() => StudentModel.create(parseStudentSpec('cnn:4'), [5], 3)).toThrow(
      /cnn student needs image inputs: samples of shape \[C, H, W\], \[H, W\] or a square number of values; the teacher's input takes samples of shape \[5\]/,
    );
  });

  it('trains a cnn student on the wasm backend (gradients reach every kernel)', async () => {
    const tf = await import('@tensorflow/tfjs');
    type Scalar = import('@tensorflow/tfjs').Scalar;
    const student = StudentModel.create(parseStudentSpec('cnn:2/4'), [1, 6, 6], 3, 5);
    const grads = tf.variableGrads(() => tf.sum(student.apply(tf.ones([2, 36]), true)) as Scalar, student.variables);
    for (const v of student.variables)
      expect(Math.max(...Array.from(grads.grads[v.name]!.dataSync(), Math.abs))).toBeGreaterThan(0);
    student.dispose();
  });

  it('verifyExport rejects a model whose weights differ from the trained ones', async () => {
    const student = StudentModel.create(parseStudentSpec('mlp:8'), [10], 3, 2);
    const model = exportStudent(student, 'x');
    const bias = model.graph!.initializer!.find((t) => t.name === 'fc1.bias')!;
    new Float32Array(bias.rawData!.buffer, bias.rawData!.byteOffset, 3)[0]! += 1e-3;
    await expect(verifyExport(student, model, randomInputs(4, 10), 4)).rejects.toThrow(
      /differ from the trained model.s: .* vs .* \(tolerance 0.00001 absolute/,
    );
    student.dispose();
  });
});
