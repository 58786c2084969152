import { TensorDataType } from '../onnx/onnx-schema.ts';
import { intAttribute, requireOpset } from '../onnx/graph.ts';
import type { ModelProto, NodeProto } from '../onnx/onnx-types.ts';
import { tensorToFloat32 } from '../onnx/tensor-values.ts';
import { tensorFromArray } from '../onnx/graph-builder.ts';
import type { TensorRange } from './calibration.ts';
import type { RewriteResult } from './dynamic-quantizer.ts';
import { ModelRewrite } from './model-rewrite.ts';
import type { NodeFilter } from './node-filter.ts';
import { quantizeWeightsSymmetric, roundHalfEven, uint8Params } from './quant-params.ts';

/** Op types static quantization covers: calibrated and wrapped in QuantizeLinear/DequantizeLinear pairs, or (MaxPool) run on the integers as they come. */
export const STATIC_OPS = new Set([
  'Conv',
  'MatMul',
  'Gemm',
  'Add',
  'Mul',
  'Relu',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'Concat',
]);

/**
 * Ops that only select or move values: their output keeps the input's scale and zero point, so ONNX Runtime
 * drops the DequantizeLinear/QuantizeLinear pair around them and runs them on the 8-bit values.
 */
const SHARED_SCALE_OPS = new Set(['MaxPool', 'Reshape', 'Flatten', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity']);

/** Ops whose weight makes them run as QLinearConv / QLinearMatMul / QGemm; a ReLU right after one is folded into its output quantization. */
const WEIGHTED_OPS = new Set(['Conv', 'MatMul', 'Gemm']);

/**
 * Convolutions summing fewer products than this per output value stay in float (0 quantizes every one).
 * Measured on the Fashion-MNIST CNN at batch 64 (ORT 1.30, AVX-512 VNNI): its 1-channel 3×3 first convolution
 * (9 products) takes ~1.0 ms as a QLinearConv (im2col with K = 9, then a requantization per output) against ~0.2 ms
 * for ORT's float NCHWc kernel. Left in float, its ReLU is moved after the MaxPool (see poolBeforeRelu), so the pool
 * runs in float too and the model enters int8 on the 4× smaller pooled map. Where no ReLU separates the pool from
 * the next quantized node, ORT would move that QuantizeLinear above the MaxPool and run it as its slow NCHW uint8
 * kernel (14 ms), so such a convolution is quantized whatever its size (floatPoolAfter).
 */
export const MIN_CONV_REDUCTION = 16;

/**
 * Whether leaving `conv` in float would put a MaxPool right before a quantized reader: ORT's QDQ propagation then
 * moves that QuantizeLinear above the pool, which runs as the NCHW uint8 MaxPool (measured 14 ms against 0.1 ms in
 * float NCHWc). A ReLU after the pool stops the propagation (ORT folds it into the QuantizeLinear afterwards).
 */
function floatPoolAfter(rewrite: ModelRewrite, conv: NodeProto): boolean {
  const poolWithoutRelu = (pool: NodeProto) =>
    rewrite.index.consumers(pool.output?.[0] ?? '').some((reader) => reader.opType !== 'Relu');
  return rewrite.index.consumers(conv.output?.[0] ?? '').some((reader) => {
    if (reader.opType === 'MaxPool') return poolWithoutRelu(reader);
    if (reader.opType !== 'Relu') return false;
    return rewrite.index.consumers(reader.output?.[0] ?? '').some((r) => r.opType === 'MaxPool' && poolWithoutRelu(r));
  });
}

/**
 * For each convolution that static quantization leaves in float (fewer than `minConvReduction` products per output),
 * rewrites Conv → ReLU → MaxPool as Conv → MaxPool → ReLU. The result is the same (ReLU is non-decreasing, so the
 * maximum of the ReLUs is the ReLU of the maximum, padding included: MaxPool pads with −∞), the ReLU runs on the
 * pooled map, and it keeps ONNX Runtime from moving the next QuantizeLinear above the float MaxPool. Only a ReLU read
 * by that MaxPool alone, and a MaxPool without an Indices output, are moved; nodes the filter excludes are left as
 * they are. Returns the model unchanged (same object) when nothing moves.
 */
export function poolBeforeRelu(
  model: ModelProto,
  filter: NodeFilter,
  minConvReduction = MIN_CONV_REDUCTION,
): { model: ModelProto; moved: string[] } {
  const rewrite = new ModelRewrite(model);
  const outputs = rewrite.index.outputNames;
  const swaps = new Map<NodeProto, NodeProto>();
  for (const conv of rewrite.order) {
    const reduction = convReduction(rewrite, conv);
    if (reduction === undefined || reduction >= minConvReduction || !filter.includes(conv)) continue;
    const convOut = conv.output?.[0] ?? '';
    const [relu, ...others] = rewrite.index.consumers(convOut);
    if (!relu || others.length || relu.opType !== 'Relu' || relu.domain || outputs.has(convOut)) continue;
    const reluOut = relu.output?.[0] ?? '';
    const [pool, ...more] = rewrite.index.consumers(reluOut);
    if (!pool || more.length || pool.opType !== 'MaxPool' || pool.domain || outputs.has(reluOut)) continue;
    if ((pool.output ?? []).filter(Boolean).length !== 1 || !filter.includes(relu) || !filter.includes(pool)) continue;
    swaps.set(relu, pool);
  }
  if (!swaps.size) return { model, moved: [] };
  const moved: string[] = [];
  const replaced = new Map<NodeProto, NodeProto>();
  for (const [relu, pool] of swaps) {
    const pooled = rewrite.names.next(`${pool.output![0]}_before_relu`);
    replaced.set(relu, { ...pool, input: [relu.input![0]!, ...(pool.input ?? []).slice(1)], output: [pooled] });
    replaced.set(pool, { ...relu, input: [pooled], output: [pool.output![0]!] });
    moved.push(`${relu.name || relu.opType} after ${pool.name || pool.opType}`);
  }
  for (const node of model.graph?.node ?? []) rewrite.keep(replaced.get(node) ?? node);
  return { model: rewrite.finish(), moved };
}

function convReduction(rewrite: ModelRewrite, node: NodeProto): number | undefined {
  if (node.opType !== 'Conv') return undefined;
  const dims = rewrite.index.initializer(node.input?.[1] ?? '')?.dims;
  return dims && dims.length >= 3 ? dims.slice(1).reduce((a, b) => a * Number(b), 1) : undefined;
}

function weightSlot(node: NodeProto): { weight: number; axis: number; bias?: number } | undefined {
  switch (node.opType) {
    case 'Conv':
      return { weight: 1, axis: 0, bias: 2 };
    case 'MatMul':
      return { weight: 1, axis: 1 };
    case 'Gemm':
      return { weight: 1, axis: intAttribute(node, 'transB', 0) ? 0 : 1, bias: 2 };
    default:
      return undefined;
  }
}

export interface StaticQuantizeOptions {
  perChannel: boolean;
  /** Convolutions with fewer products per output value stay float (default MIN_CONV_REDUCTION; 0 quantizes every one); run poolBeforeRelu with the same value first. */
  minConvReduction?: number;
  reduceRange: boolean;
  filter: NodeFilter;
}

/**
 * Where the QDQ pairs go. `nodes` are calibrated and quantized; a ReLU whose only input comes from a weighted
 * node that will be quantized (constant float weight, float activation) is folded: the weighted node writes the
 * ReLU's output directly and its uint8 quantization, with zero point 0 from a range starting at 0, does the
 * clamping. ONNX Runtime then fuses DQ → Conv → Q into one QLinearConv instead of leaving a float
 * DequantizeLinear → QuantizeLinear round trip over the whole feature map between Conv and ReLU.
 */
export interface StaticPlan {
  nodes: NodeProto[];
  /** Nodes left in float by the placement itself, with the reason. */
  skipped: RewriteResult['skipped'];
  /** Weighted node → the ReLU folded into it. */
  folded: Map<NodeProto, NodeProto>;
  /** Float activations to calibrate: every non-constant input and the (folded) output of the quantized nodes. */
  tensors: string[];
}

function planStatic(rewrite: ModelRewrite, filter: NodeFilter, minConvReduction = MIN_CONV_REDUCTION): StaticPlan {
  const skipped: RewriteResult['skipped'] = [];
  const candidates = rewrite.order.filter((n) => {
    if (n.domain || !STATIC_OPS.has(n.opType ?? '') || SHARED_SCALE_OPS.has(n.opType ?? '') || !filter.includes(n))
      return false;
    const reduction = convReduction(rewrite, n);
    if (reduction !== undefined && reduction < minConvReduction && !floatPoolAfter(rewrite, n)) {
      skipped.push({
        node: n.name || n.opType || '',
        reason: `${reduction} products per output value, too few for an integer convolution to pay (under ${minConvReduction})`,
      });
      return false;
    }
    return true;
  });
  const graphOutputs = rewrite.index.outputNames;
  const quantizable = (node: NodeProto): boolean => {
    const slot = weightSlot(node);
    if (!slot) return false;
    const weight = rewrite.index.initializer(node.input?.[slot.weight] ?? '');
    const activation = node.input?.[0] ?? '';
    return (
      weight?.dataType === TensorDataType.FLOAT && !rewrite.index.initializer(activation) && rewrite.isFloat(activation)
    );
  };
  const candidateSet = new Set(candidates);
  const folded = new Map<NodeProto, NodeProto>();
  const foldedRelus = new Set<NodeProto>();
  for (const node of candidates) {
    if (node.opType !== 'Relu') continue;
    const input = node.input?.[0] ?? '';
    const producer = rewrite.index.producer(input);
    if (!producer || !candidateSet.has(producer) || !WEIGHTED_OPS.has(producer.opType ?? '') || !quantizable(producer))
      continue;
    if (producer.output?.[0] !== input || rewrite.index.consumers(input).length !== 1 || graphOutputs.has(input))
      continue;
    folded.set(producer, node);
    foldedRelus.add(node);
  }
  // A ReLU after a node left in float stays in float too: quantizing it would put a Q/DQ round trip on a float map.
  const nodes = candidates.filter((n) => {
    if (foldedRelus.has(n)) return false;
    if (n.opType !== 'Relu') return true;
    const producer = rewrite.index.producer(n.input?.[0] ?? '');
    return producer === undefined || candidateSet.has(producer);
  });
  const tensors = new Set<string>();
  for (const node of nodes) {
    const slot = weightSlot(node);
    (node.input ?? []).forEach((name, i) => {
      if (!name || rewrite.index.initializer(name) || i === slot?.bias || !rewrite.isFloat(name)) return;
      tensors.add(name);
    });
    const out = folded.get(node)?.output?.[0] ?? node.output?.[0];
    if (out && rewrite.isFloat(out)) tensors.add(out);
  }
  return { nodes, skipped, folded, tensors: [...tensors] };
}

/** The float activations a static pass must calibrate, and the nodes it quantizes. */
export function staticTargets(model: ModelProto, filter: NodeFilter, minConvReduction?: number): StaticPlan {
  return planStatic(new ModelRewrite(model), filter, minConvReduction);
}

/**
 * Static INT8 in QDQ form: each calibrated activation gets QuantizeLinear(uint8) → DequantizeLinear and
 * every reader takes the dequantized value; weights are stored as symmetric int8 behind a DequantizeLinear
 * (per-channel with an axis, opset 13); Conv/Gemm biases as int32 with scale = input scale × weight scale.
 * ONNX Runtime recognises DQ → op → Q groups and runs them as QLinear kernels.
 */
export function quantizeStatic(
  model: ModelProto,
  ranges: ReadonlyMap<string, TensorRange>,
  options: StaticQuantizeOptions,
): RewriteResult {
  const rewrite = new ModelRewrite(model);
  const plan = planStatic(rewrite, options.filter, options.minConvReduction);
  const { nodes: targets, folded } = plan;
  const targetSet = new Set(targets);
  const foldedRelus = new Set(folded.values());
  const graphOutputs = rewrite.index.outputNames;
  const params = new Map<string, { scale: string; zeroPoint: string; value: number }>();
  const dequantized = new Map<string, string>();
  const renamedOutputs = new Map<string, string>();
  const skipped: RewriteResult['skipped'] = [...plan.skipped];
  const quantizedNodes: string[] = [];

  const activationParams = (name: string) => {
    let p = params.get(name);
    if (!p) {
      const range = ranges.get(name)!;
      const { scale, zeroPoint } = uint8Params(range.min, range.max);
      p = {
        scale: rewrite.addInitializer(
          tensorFromArray(rewrite.names.next(`${name}_scale`), [], new Float32Array([scale])),
        ),
        zeroPoint: rewrite.addInitializer(
          tensorFromArray(rewrite.names.next(`${name}_zero_point`), [], new Uint8Array([zeroPoint])),
        ),
        value: Math.fround(scale),
      };
      params.set(name, p);
    }
    return p;
  };

  /** Q → DQ after a value is produced; readers switch to the DQ output. Graph outputs keep their name on the DQ side. `shared`: the input's parameters, for ops that only move values. */
  const insertQdq = (name: string, shared?: { scale: string; zeroPoint: string; value: number }) => {
    if (dequantized.has(name) || (!shared && !ranges.has(name))) return;
    const p = shared ?? activationParams(name);
    if (shared) params.set(name, shared);
    const source = renamedOutputs.get(name) ?? name;
    const q = rewrite.names.next(`${name}_quantized`);
    rewrite.emit('QuantizeLinear', [source, p.scale, p.zeroPoint], [q], {}, `${name}_QuantizeLinear`);
    const dq = renamedOutputs.has(name) ? name : rewrite.names.next(`${name}_dequantized`);
    rewrite.emit('DequantizeLinear', [q, p.scale, p.zeroPoint], [dq], {}, `${name}_DequantizeLinear`);
    dequantized.set(name, dq);
  };

  const graphInputs = rewrite.index.inputNames;
  for (const name of graphInputs) if (ranges.has(name)) insertQdq(name);

  for (const node of rewrite.order) {
    if (foldedRelus.has(node)) {
      quantizedNodes.push(node.name || `${node.opType}:${node.output?.[0]}`);
      continue;
    }
    const quantize = targetSet.has(node);
    const inputs = (node.input ?? []).map((n) => dequantized.get(n) ?? n);
    const relu = folded.get(node);
    let outputs = relu ? [relu.output![0]!, ...(node.output ?? []).slice(1)] : (node.output ?? []);
    const produced = outputs;
    if (quantize) {
      const slot = weightSlot(node);
      if (slot) {
        const weightName = inputs[slot.weight] ?? '';
        const weight = rewrite.index.initializer(weightName);
        const activation = node.input?.[0] ?? '';
        const activationScale = params.get(activation)?.value;
        if (!weight || weight.dataType !== TensorDataType.FLOAT || activationScale === undefined) {
          skipped.push({
            node: node.name || node.opType || '',
            reason: !weight ? 'its weight is not a constant initializer' : 'its input was not calibrated',
          });
        } else {
          const dims = weight.dims ?? [];
          const perChannel = options.perChannel && dims.length >= 2;
          const axis = perChannel ? slot.axis : undefined;
          const q = quantizeWeightsSymmetric(tensorToFloat32(weight), dims, options.reduceRange, axis);
          const channelDims = perChannel ? [dims[slot.axis]!] : [];
          const wq = rewrite.addInitializer(
            tensorFromArray(rewrite.names.next(`${weightName}_quantized`), dims, q.values),
          );
          const ws = rewrite.addInitializer(
            tensorFromArray(rewrite.names.next(`${weightName}_scale`), channelDims, q.scales),
          );
          const wz = rewrite.addInitializer(
            tensorFromArray(
              rewrite.names.next(`${weightName}_zero_point`),
              channelDims,
              new Int8Array(perChannel ? dims[slot.axis]! : 1),
            ),
          );
          const wdq = rewrite.names.next(`${weightName}_dequantized`);
          rewrite.emit(
            'DequantizeLinear',
            [wq, ws, wz],
            [wdq],
            perChannel ? { axis: slot.axis } : {},
            `${weightName}_DequantizeLinear`,
          );
          inputs[slot.weight] = wdq;
          const biasName = slot.bias !== undefined ? node.input?.[slot.bias] : undefined;
          const bias = biasName ? rewrite.index.initializer(biasName) : undefined;
          const biasChannels = bias ? (bias.dims ?? []).reduce((a, b) => a * b, 1) : 0;
          if (
            bias &&
            bias.dataType === TensorDataType.FLOAT &&
            (bias.dims ?? []).length <= 1 &&
            (!perChannel || biasChannels === q.scales.length)
          ) {
            const values = tensorToFloat32(bias);
            const scales = Float32Array.from(values, (_, i) =>
              Math.fround(activationScale * q.scales[perChannel ? i : 0]!),
            );
            const int32 = Int32Array.from(values, (v, i) =>
              Math.max(-2147483648, Math.min(2147483647, roundHalfEven(v / scales[i]!))),
            );
            const bq = rewrite.addInitializer(
              tensorFromArray(rewrite.names.next(`${biasName}_quantized`), bias.dims ?? [], int32),
            );
            const biasScale = perChannel ? scales : new Float32Array([scales[0] ?? activationScale * q.scales[0]!]);
            const bs = rewrite.addInitializer(
              tensorFromArray(rewrite.names.next(`${biasName}_scale`), perChannel ? [biasScale.length] : [], biasScale),
            );
            const bz = rewrite.addInitializer(
              tensorFromArray(
                rewrite.names.next(`${biasName}_zero_point`),
                perChannel ? [biasScale.length] : [],
                new Int32Array(perChannel ? biasScale.length : 1),
              ),
            );
            const bdq = rewrite.names.next(`${biasName}_dequantized`);
            rewrite.emit(
              'DequantizeLinear',
              [bq, bs, bz],
              [bdq],
              perChannel ? { axis: 0 } : {},
              `${biasName}_DequantizeLinear`,
            );
            inputs[slot.bias!] = bdq;
          }
        }
      } else {
        // Constant operands of Add/Mul/Concat are quantized like activations, from their own range.
        inputs.forEach((_name, i) => {
          const original = node.input?.[i] ?? '';
          const constant = rewrite.index.initializer(original);
          if (!constant || constant.dataType !== TensorDataType.FLOAT) return;
          if (!dequantized.has(original)) {
            const values = tensorToFloat32(constant);
            let min = 0;
            let max = 0;
            for (const v of values) {
              if (v < min) min = v;
              if (v > max) max = v;
            }
            const { scale, zeroPoint } = uint8Params(min, max);
            const s = rewrite.addInitializer(
              tensorFromArray(rewrite.names.next(`${original}_scale`), [], new Float32Array([scale])),
            );
            const z = rewrite.addInitializer(
              tensorFromArray(rewrite.names.next(`${original}_zero_point`), [], new Uint8Array([zeroPoint])),
            );
            const q = Uint8Array.from(values, (v) =>
              Math.max(0, Math.min(255, roundHalfEven(v / Math.fround(scale)) + zeroPoint)),
            );
            const qn = rewrite.addInitializer(
              tensorFromArray(rewrite.names.next(`${original}_quantized`), constant.dims ?? [], q),
            );
            const dq = rewrite.names.next(`${original}_dequantized`);
            rewrite.emit('DequantizeLinear', [qn, s, z], [dq], {}, `${original}_DequantizeLinear`);
            dequantized.set(original, dq);
          }
          inputs[i] = dequantized.get(original)!;
        });
      }
      quantizedNodes.push(node.name || `${node.opType}:${node.output?.[0]}`);
    }
    const out = outputs[0];
    // A weighted node's float result is the model's answer: DQ → Gemm/MatMul without Q still runs on integers (QGemm,
    // MatMulIntegerToFloat) and keeps the output's precision.
    const floatResult = out !== undefined && graphOutputs.has(out) && WEIGHTED_OPS.has(node.opType ?? '');
    if (out && graphOutputs.has(out) && ranges.has(out) && quantize && !floatResult) {
      const renamed = rewrite.names.next(`${out}_float`);
      renamedOutputs.set(out, renamed);
      outputs = [renamed, ...outputs.slice(1)];
    }
    rewrite.keep({ ...node, input: inputs, output: outputs });
    const source = node.input?.[0] ?? '';
    const shares =
      SHARED_SCALE_OPS.has(node.opType ?? '') &&
      !node.domain &&
      options.filter.includes(node) &&
      dequantized.has(source) &&
      params.has(source);
    if (shares && STATIC_OPS.has(node.opType ?? ''))
      quantizedNodes.push(node.name || `${node.opType}:${node.output?.[0]}`);
    for (const [i, o] of produced.entries()) {
      if (shares && i === 0 && rewrite.isFloat(node.output?.[0] ?? '')) insertQdq(o, params.get(source));
      else if ((quantize && !(floatResult && i === 0)) || consumersQuantized(o)) insertQdq(o);
    }
  }

  function consumersQuantized(name: string): boolean {
    return rewrite.index.consumers(name).some((c) => targetSet.has(c));
  }

  const result = rewrite.finish();
  requireOpset(result, options.perChannel ? 13 : 10);
  return { model: result, quantizedNodes, skipped };
}
