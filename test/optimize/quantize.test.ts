import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { encodeModel, writeModelFile, readModelFile, encodeTensor } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import { float32Tensor, openSession } from '../../src/optimize/onnx/ort-session.ts';
import { tensorValues, float16BitsToFloat32 } from '../../src/optimize/onnx/tensor-values.ts';
import { quantize } from '../../src/optimize/index.ts';
import { formatQuantizeReport } from '../../src/optimize/evaluate/quantize-report.ts';
import {
  quantizeWeightsSymmetric,
  roundHalfEven,
  uint8Params,
  quantizeValue,
} from '../../src/optimize/quantize/quant-params.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { NodeFilter } from '../../src/optimize/quantize/node-filter.ts';
import { poolBeforeRelu } from '../../src/optimize/quantize/static-quantizer.ts';

const work = mkdtempSync(join(tmpdir(), 'caliper-quantize-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const FLOAT = TensorDataType.FLOAT;
const noLatency = { latencyBatchSizes: [] as number[] };

/** y = x · W (+ bias via Gemm), with W chosen so scales and rounding are checkable by hand. */
function linearModel(op: 'MatMul' | 'Gemm', weights: number[], k: number, n: number, bias?: number[]): ModelProto {
  const b = new GraphBuilder('linear', 17);
  const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', k] });
  const w = b.initializer(tensorFromArray('w', [k, n], Float32Array.from(weights)));
  const inputs = [x, w];
  if (bias) inputs.push(b.initializer(tensorFromArray('bias', [n], Float32Array.from(bias))));
  b.node(op, inputs, {}, ['y']);
  b.output({ name: 'y', elemType: FLOAT, shape: ['N', n] });
  return b.build();
}

function initializer(model: ModelProto, name: string) {
  return model.graph!.initializer!.find((t) => t.name === name)!;
}

async function run(model: ModelProto, x: number[], dims: number[]): Promise<Float32Array> {
  const session = await openSession(encodeModel(model));
  return (await session.run({ x: float32Tensor(Float32Array.from(x), dims) })).y!.data as Float32Array;
}

describe('quantization arithmetic', () => {
  it('rounds half to even and saturates', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 3]);
    expect(quantizeValue(1000, 1, 0, -127, 127)).toBe(127);
    expect(quantizeValue(-1000, 1, 0, -127, 127)).toBe(-127);
    expect(quantizeValue(300, 1, 10, 0, 255)).toBe(255);
  });

  it('gives symmetric int8 weights scale max|w|/127, or /63 with reduced range, per tensor or per channel', () => {
    const w = Float32Array.from([1.27, -0.635, 0.005, 0.0075, 2.54, 0]);
    const perTensor = quantizeWeightsSymmetric(w, [3, 2], false);
    expect(perTensor.scales[0]).toBeCloseTo(0.02, 7);
    expect(Array.from(perTensor.values)).toEqual([64, -32, 0, 0, 127, 0]);
    const perChannel = quantizeWeightsSymmetric(w, [3, 2], false, 1);
    expect(Array.from(perChannel.scales)).toEqual([Math.fround(2.54 / 127), Math.fround(0.635 / 127)]);
    expect(Array.from(perChannel.values)).toEqual([64, -127, 0, 2, 127, 0]);
    const reduced = quantizeWeightsSymmetric(w, [3, 2], true);
    expect(reduced.scales[0]).toBeCloseTo(2.54 / 63, 7);
    expect(Math.max(...reduced.values)).toBe(63);
  });

  it('gives uint8 activation parameters whose zero point makes 0 exact', () => {
    const signed = uint8Params(-1, 1.55);
    expect(signed.scale).toBeCloseTo(0.01, 12);
    expect(signed.zeroPoint).toBe(100);
    const positive = uint8Params(0.5, 2.55);
    expect(positive.scale).toBeCloseTo(0.01, 12);
    expect(positive.zeroPoint).toBe(0);
    expect(uint8Params(0, 0)).toEqual({ scale: 1, zeroPoint: 0 });
  });
});

describe('dynamic INT8', () => {
  it('writes int8 weights with the hand-computed scale and matches x·W within one quantization step', async () => {
    // max |w| = 1.27 → scale 0.01; 0.005 rounds to 0 (half to even), 0.015 rounds to 2.
    const weights = [1.27, -0.5, 0.005, 0.015, -1.27, 0.3];
    const { model, report } = await quantize(linearModel('MatMul', weights, 3, 2), { mode: 'dynamic', ...noLatency });
    const ops = model.graph!.node!.map((n) => n.opType);
    expect(ops).toEqual(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul']);
    const wq = model.graph!.initializer!.find((t) => t.dataType === TensorDataType.INT8 && t.dims!.length === 2)!;
    expect(Array.from(tensorValues(wq) as Int8Array)).toEqual([127, -50, 0, 2, -127, 30]);
    const scale = model.graph!.initializer!.find((t) => t.name!.startsWith('w_scale'))!;
    expect((tensorValues(scale) as Float32Array)[0]).toBeCloseTo(0.01, 7);
    const x = [0.2, 0.4, 1.0];
    const y = await run(model, x, [1, 3]);
    const exact = [0.2 * 1.27 + 0.4 * 0.005 - 1.27, -0.2 * 0.5 + 0.4 * 0.015 + 0.3];
    for (let i = 0; i < 2; i++) expect(Math.abs(y[i]! - exact[i]!)).toBeLessThan(0.02);
    expect(report.convertedNodes).toBe(1);
  });

  it('rewrites Gemm (transB, bias) into MatMulInteger + Add, per channel', async () => {
    const b = new GraphBuilder('gemm', 13);
    const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', 4] });
    const w = b.initializer(tensorFromArray('w', [2, 4], Float32Array.from([1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4])));
    const c = b.initializer(tensorFromArray('c', [2], Float32Array.from([10, -10])));
    b.node('Gemm', [x, w, c], { transB: 1 }, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
    const { model, report } = await quantize(b.build(), {
      mode: 'dynamic',
      perChannel: true,
      reduceRange: true,
      ...noLatency,
    });
    expect(model.graph!.node!.map((n) => n.opType)).toContain('Add');
    const scales = model.graph!.initializer!.find((t) => t.name!.startsWith('w_scale'))!;
    expect(Array.from(tensorValues(scales) as Float32Array)).toEqual([Math.fround(4 / 63), Math.fround(0.4 / 63)]);
    const y = await run(model, [1, 1, 1, 1], [1, 4]);
    expect(y[0]).toBeCloseTo(20, 0);
    expect(y[1]).toBeCloseTo(-9, 1);
    expect(report.outputDifference.maxAbs).toBeLessThan(0.2);
  });
});

describe('static INT8 (QDQ)', () => {
  it('calibrates activations, stores int32 bias with scale = input scale × weight scale, and stays close', async () => {
    const data = join(work, 'calib.csv');
    writeFileSync(
      data,
      `a,b,label\n${Array.from({ length: 64 }, (_, i) => `${((i % 8) / 7) * 2.55},${-1 + ((i % 5) / 4) * 2},${i % 2}`).join('\n')}\n`,
    );
    const model = linearModel('Gemm', [1, -1, 0.5, 0.25], 2, 2, [0.1, -0.2]);
    const { model: q, report } = await quantize(model, { mode: 'static', calibration: data, eval: data, ...noLatency });
    const ops = q.graph!.node!.map((n) => n.opType);
    // Only the input is quantized: a Gemm answering the graph output keeps a float result (ORT runs DQ → Gemm as QGemm).
    expect(ops.filter((o) => o === 'QuantizeLinear').length).toBe(1);
    expect(report.kernels!.quantized.QGemm).toBe(1);
    expect(report.kernels!.float).toEqual({});
    const xScale = (tensorValues(initializer(q, 'x_scale')) as Float32Array)[0]!;
    expect(xScale).toBeCloseTo((2.55 + 1) / 255, 6);
    expect((tensorValues(initializer(q, 'x_zero_point')) as Uint8Array)[0]).toBe(Math.round(1 / ((2.55 + 1) / 255)));
    const biasQ = q.graph!.initializer!.find(
      (t) => t.dataType === TensorDataType.INT32 && t.name!.startsWith('bias_quantized'),
    )!;
    const wScale = 1 / 127;
    expect(Array.from(tensorValues(biasQ) as Int32Array)).toEqual(
      [0.1, -0.2].map((v) => Math.round(v / Math.fround(xScale * Math.fround(wScale)))),
    );
    expect(report.outputDifference.maxAbs).toBeLessThan(0.05);
    expect(report.accuracy?.samples).toBe(64);
  });

  it('quantizes a Conv → Relu → MaxPool → Concat network and honours --exclude', async () => {
    const b = new GraphBuilder('cnn', 13);
    const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', 2, 4, 4] });
    const w = b.initializer(
      tensorFromArray(
        'w',
        [2, 2, 3, 3],
        Float32Array.from({ length: 36 }, (_, i) => Math.sin(i)),
      ),
    );
    const bias = b.initializer(tensorFromArray('cb', [2], Float32Array.from([0.1, -0.1])));
    const [conv] = b.node('Conv', [x, w, bias], { pads: [1, 1, 1, 1] });
    const [relu] = b.node('Relu', [conv!]);
    const [pool] = b.node('MaxPool', [relu!], { kernel_shape: [2, 2], strides: [2, 2] });
    const [avg] = b.node('AveragePool', [relu!], { kernel_shape: [2, 2], strides: [2, 2] });
    b.node('Concat', [pool!, avg!], { axis: 1 }, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: ['N', 4, 2, 2] });
    const pb = join(work, 'calib.pb');
    writeFileSync(
      pb,
      encodeTensor(
        tensorFromArray(
          'x',
          [16, 2, 4, 4],
          Float32Array.from({ length: 512 }, (_, i) => Math.cos(i)),
        ),
      ),
    );
    const all = await quantize(b.build(), {
      mode: 'static',
      perChannel: true,
      calibration: pb,
      method: 'percentile',
      ...noLatency,
    });
    expect(all.report.convertedNodes).toBe(5);
    expect(all.model.opsetImport![0]!.version).toBeGreaterThanOrEqual(13);
    expect(all.report.outputDifference.maxAbs).toBeLessThan(0.1);
    const some = await quantize(b.build(), {
      mode: 'static',
      calibration: pb,
      method: 'entropy',
      exclude: ['AveragePool', 'Concat'],
      ...noLatency,
    });
    expect(some.report.convertedNodes).toBe(3);
  });
});

/** conv 3×3 → ReLU → maxpool → conv 3×3 → ReLU → maxpool → fc → ReLU → fc, with `inChannels` image channels. */
/** conv 3×3 ×8 → ReLU → maxpool → conv 3×3 ×16 → ReLU → maxpool → fc 32 → ReLU → fc 4 on [N, C, 8, 8]; `relu: false` drops the convolutions' ReLUs. */
function smallCnn(inChannels: number, relu = true): ModelProto {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5;
  const b = new GraphBuilder('cnn', 17);
  let [h] = [b.input({ name: 'x', elemType: FLOAT, shape: ['N', inChannels, 8, 8] })];
  let c = inChannels;
  for (const [i, out] of [8, 16].entries()) {
    const w = b.initializer(
      tensorFromArray(`conv${i}.w`, [out, c, 3, 3], Float32Array.from({ length: out * c * 9 }, random)),
    );
    [h] = b.node(
      'Conv',
      [h!, w, b.initializer(tensorFromArray(`conv${i}.b`, [out], Float32Array.from({ length: out }, random)))],
      { pads: [1, 1, 1, 1] },
    );
    if (relu) [h] = b.node('Relu', [h!]);
    [h] = b.node('MaxPool', [h!], { kernel_shape: [2, 2], strides: [2, 2] });
    c = out;
  }
  [h] = b.node('Flatten', [h!], { axis: 1 });
  [h] = b.node('Gemm', [
    h!,
    b.initializer(tensorFromArray('fc0.w', [64, 32], Float32Array.from({ length: 64 * 32 }, random))),
  ]);
  [h] = b.node('Relu', [h!]);
  b.node(
    'Gemm',
    [h!, b.initializer(tensorFromArray('fc1.w', [32, 4], Float32Array.from({ length: 32 * 4 }, random)))],
    {},
    ['y'],
  );
  b.output({ name: 'y', elemType: FLOAT, shape: ['N', 4] });
  return b.build();
}

describe('static INT8 placement on a convnet', () => {
  const calibration = (channels: number) => {
    const path = join(work, `cnn-calib-${channels}.pb`);
    writeFileSync(
      path,
      encodeTensor(
        tensorFromArray(
          'x',
          [32, channels, 8, 8],
          Float32Array.from({ length: 32 * channels * 64 }, (_, i) => Math.abs(Math.sin(i * 0.37))),
        ),
      ),
    );
    return path;
  };

  it('folds each ReLU into its Conv/Gemm, keeps MaxPool and Flatten on the input scale, and ONNX Runtime runs no float compute kernel', async () => {
    const { model, report } = await quantize(smallCnn(4), {
      mode: 'static',
      perChannel: true,
      calibration: calibration(4),
      ...noLatency,
    });
    const nodes = model.graph!.node!;
    expect(nodes.filter((n) => n.opType === 'Relu')).toEqual([]);
    for (const pool of nodes.filter((n) => n.opType === 'MaxPool' || n.opType === 'Flatten')) {
      const dq = nodes.find((n) => n.output![0] === pool.input![0])!;
      const q = nodes.find((n) => n.opType === 'QuantizeLinear' && n.input![0] === pool.output![0])!;
      expect(dq.opType).toBe('DequantizeLinear');
      expect(q.input!.slice(1)).toEqual(dq.input!.slice(1));
    }
    // ReLU folded: the Conv's output quantization starts at zero (uint8 zero point 0 clamps the negatives).
    const convQ = nodes.find(
      (n) => n.opType === 'QuantizeLinear' && nodes.find((p) => p.output![0] === n.input![0])?.opType === 'Conv',
    )!;
    expect(Array.from(tensorValues(initializer(model, convQ.input![2]!)) as Uint8Array)).toEqual([0]);
    expect(report.kernels).toMatchObject({
      quantized: { QLinearConv: 2, NhwcMaxPool: 2, QGemm: 2 },
      float: {},
      boundaries: { QuantizeLinear: 1 },
    });
    // The report names the nodes that ran quantized (ORT's names: each fused node's name starts with the original's).
    const ran = report.kernels!.nodes.quantized;
    expect(ran.filter((n) => n.startsWith('QLinearConv ')).map((n) => n.split(' ')[1]!.split('_token')[0])).toEqual([
      'Conv_0',
      'Conv_3',
    ]);
    expect(report.kernels!.nodes.float).toEqual([]);
    expect(formatQuantizeReport(report)).toContain(`  ran quantized ${ran.join(', ')}`);
    expect(report.outputDifference.maxAbs).toBeLessThan(0.2);
  });

  it('leaves a one-channel first convolution in float with its MaxPool before the ReLU, so ORT pools in float and enters int8 after the pool', async () => {
    const { model, report } = await quantize(smallCnn(1), {
      mode: 'static',
      calibration: calibration(1),
      ...noLatency,
    });
    expect(report.warnings).toContain(
      'Conv_0 left in float32: 9 products per output value, too few for an integer convolution to pay (under 16)',
    );
    expect(report.warnings).toContain(
      'Relu_1 after MaxPool_2 of a float convolution (same result; the pool stays float, int8 starts after it)',
    );
    const nodes = model.graph!.node!;
    const pool = nodes.find((n) => n.name === 'MaxPool_2')!;
    expect(nodes.find((n) => n.output![0] === pool.input![0])!.opType).toBe('Conv');
    // ORT ran the pool in float (NCHWc) and no uint8 NCHW MaxPool: the ReLU after it stopped the QuantizeLinear moving up.
    expect(report.kernels!.float).toEqual({ Conv: 1, MaxPool: 1 });
    expect(report.kernels!.quantized).toEqual({ QLinearConv: 1, NhwcMaxPool: 1, QGemm: 2 });
    expect(report.kernels!.boundaries).toEqual({ QuantizeLinear: 1 });
    expect(report.accuracy).toBeUndefined();
    expect(report.outputDifference.maxAbs).toBeLessThan(0.2);
  });

  it('--min-conv-reduction 0 quantizes the one-channel convolution too', async () => {
    const { report } = await quantize(smallCnn(1), {
      mode: 'static',
      calibration: calibration(1),
      minConvReduction: 0,
      ...noLatency,
    });
    expect(report.warnings.filter((w) => w.includes('float'))).toEqual([]);
    expect(report.kernels!.float).toEqual({});
    expect(report.kernels!.quantized).toEqual({ QLinearConv: 2, NhwcMaxPool: 2, QGemm: 2 });
  });

  it('quantizes a short convolution anyway when no ReLU separates its MaxPool from the next quantized node', async () => {
    const { report } = await quantize(smallCnn(1, false), {
      mode: 'static',
      calibration: calibration(1),
      ...noLatency,
    });
    expect(report.warnings.filter((w) => w.includes('Conv_0'))).toEqual([]);
    expect(report.kernels!.float).toEqual({});
    expect(report.kernels!.quantized).not.toHaveProperty('MaxPool');
  });

  it('moving MaxPool before the ReLU of a float convolution leaves the outputs exactly as they were', async () => {
    const original = smallCnn(1);
    const { model: moved, moved: names } = poolBeforeRelu(original, new NodeFilter());
    expect(names).toEqual(['Relu_1 after MaxPool_2']);
    expect(moved.graph!.node!.map((n) => n.opType).slice(0, 3)).toEqual(['Conv', 'MaxPool', 'Relu']);
    const x = Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i * 0.61) * 2);
    expect(await run(moved, x, [3, 1, 8, 8])).toEqual(await run(original, x, [3, 1, 8, 8]));
    // Nothing moves when the convolution is long enough to be quantized, or when --exclude names the ReLU.
    expect(poolBeforeRelu(smallCnn(4), new NodeFilter()).moved).toEqual([]);
    expect(poolBeforeRelu(original, new NodeFilter(['Relu_1'])).moved).toEqual([]);
  });
});

describe('fp16', () => {
  it('halves the weights, keeps float32 I/O with Casts and stays within 1e-2', async () => {
    const model = linearModel(
      'MatMul',
      Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i) * 0.1),
      64,
      32,
    );
    const { model: half, report } = await quantize(model, { mode: 'fp16', ...noLatency });
    const w = half.graph!.initializer!.find((t) => t.name === 'w')!;
    expect(w.dataType).toBe(TensorDataType.FLOAT16);
    expect(float16BitsToFloat32(tensorValues(w) as Uint16Array)[1]).toBeCloseTo(Math.sin(1) * 0.1, 3);
    expect(half.graph!.input![0]!.type!.tensorType!.elemType).toBe(FLOAT);
    expect(half.graph!.output![0]!.type!.tensorType!.elemType).toBe(FLOAT);
    expect(report.size.ratio).toBeLessThan(0.55);
    expect(report.outputDifference.maxAbs).toBeLessThan(1e-2);
  });

  it('keeps block-listed ops in float32 between Casts', async () => {
    const b = new GraphBuilder('blocked', 17);
    const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
    const [h] = b.node('MatMul', [x, b.initializer(tensorFromArray('w', [2, 2], Float32Array.from([1, 2, 3, 4])))]);
    b.node('Relu', [h!], {}, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
    const { model: half, report } = await quantize(b.build(), { mode: 'fp16', blockOps: ['MatMul'], ...noLatency });
    const matmul = half.graph!.node!.find((n) => n.opType === 'MatMul')!;
    expect(matmul.input![0]).toBe('x');
    expect(half.graph!.node!.filter((n) => n.opType === 'Cast').length).toBe(4);
    expect(report.floatOps).toEqual({ MatMul: 1 });
    expect(report.outputDifference.maxAbs).toBe(0);
  });
});

describe('bad input', () => {
  const model = linearModel('MatMul', [1, 2, 3, 4], 2, 2);

  it('rejects a file that is not ONNX', async () => {
    const path = join(work, 'not-a-model.onnx');
    writeFileSync(path, 'hello, I am text');
    await expect(quantize(path, { mode: 'dynamic' })).rejects.toMatchObject({
      code: 'CALIPER_QUANTIZE_NOT_ONNX',
      message: expect.stringContaining('not a valid ONNX model'),
    });
  });

  it('rejects an already-quantized model', async () => {
    const { model: q } = await quantize(model, { mode: 'dynamic', ...noLatency });
    await expect(quantize(q, { mode: 'static', calibration: 'x' })).rejects.toMatchObject({
      code: 'CALIPER_QUANTIZE_ALREADY_QUANTIZED',
    });
  });

  it('leaves unsupported ops in float and lists them in a warning', async () => {
    const b = new GraphBuilder('mixed', 17);
    const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
    const [h] = b.node('MatMul', [x, b.initializer(tensorFromArray('w', [2, 2], Float32Array.from([1, 2, 3, 4])))]);
    const [s] = b.node('Softmax', [h!], { axis: 1 });
    b.node('Erf', [s!], {}, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
    const data = join(work, 'mixed.csv');
    writeFileSync(data, 'a,b\n0.1,0.2\n0.5,-0.3\n1,1\n');
    const { report } = await quantize(b.build(), { mode: 'static', calibration: data, ...noLatency });
    expect(report.floatOps).toEqual({ Softmax: 1, Erf: 1 });
    expect(report.warnings.join('\n')).toMatch(/left in float32.*Softmax, Erf/);
  });

  it('requires calibration data for static mode and checks that it fits the model input', async () => {
    await expect(quantize(model, { mode: 'static' })).rejects.toMatchObject({
      code: 'CALIPER_QUANTIZE_CALIBRATION_DATA',
    });
    await expect(quantize(model, { mode: 'static', calibration: join(work, 'missing.parquet') })).rejects.toThrow(
      /does not exist/,
    );
    const wrong = join(work, 'wrong.csv');
    writeFileSync(wrong, 'a,b,c\n1,2,3\n');
    await expect(quantize(model, { mode: 'static', calibration: wrong })).rejects.toThrow(
      /3 values per sample \[3\], but model input x expects \[N, 2\] \(2 per sample\)/,
    );
  });

  it('says when there is nothing to quantize', async () => {
    const b = new GraphBuilder('relu', 17);
    b.node('Relu', [b.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] })], {}, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
    await expect(quantize(b.build(), { mode: 'dynamic' })).rejects.toMatchObject({
      code: 'CALIPER_QUANTIZE_NOTHING_TO_DO',
    });
  });

  it('never writes a model ONNX Runtime cannot run', async () => {
    // Dynamic quantization needs opset 11; Upsample no longer exists there, so the raised model cannot load.
    const out = join(work, 'broken.onnx');
    const b = new GraphBuilder('old', 9);
    const x = b.input({ name: 'x', elemType: FLOAT, shape: [1, 1, 2, 2] });
    const [h] = b.node('MatMul', [x, b.initializer(tensorFromArray('w', [2, 2], Float32Array.from([1, 2, 3, 4])))]);
    b.node('Upsample', [h!, b.initializer(tensorFromArray('scales', [4], Float32Array.from([1, 1, 2, 2])))], {}, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: [1, 1, 4, 4] });
    await expect(quantize(b.build(), { mode: 'dynamic', output: out })).rejects.toMatchObject({
      code: 'CALIPER_QUANTIZE_BROKEN_OUTPUT',
      message: expect.stringContaining('not written'),
    });
    expect(existsSync(out)).toBe(false);
  });

  it('writes the output file, with latency measured at batch 1 and 64', async () => {
    const path = join(work, 'in.onnx');
    writeModelFile(
      path,
      linearModel(
        'MatMul',
        Array.from({ length: 256 }, (_, i) => i / 256),
        16,
        16,
      ),
    );
    const out = join(work, 'out.onnx');
    // A 16x16 layer is too small for int8 to pay (the guard would refuse it as slower): forced.
    const { report } = await quantize(path, { mode: 'dynamic', output: out, force: true });
    expect(report.guard.written).toBe(true);
    expect(readModelFile(out).graph!.node!.some((n) => n.opType === 'MatMulInteger')).toBe(true);
    expect(report.latency.map((l) => l.batchSize)).toEqual([1, 64]);
  });
});
