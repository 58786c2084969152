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

/** Op types static quantization wraps in QuantizeLinear/DequantizeLinear pairs. */
export const STATIC_OPS = new Set([
  'Conv', 'MatMul', 'Gemm', 'Add', 'Mul', 'Relu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Concat',
]);

/** Which input of a weighted op holds the weight, its per-channel axis, and which input the bias. */
function weightSlot(node: NodeProto): { weight: number; axis: number; bias?: number } | undefined {
  switch (node.opType) {
    case 'Conv': return { weight: 1, axis: 0, bias: 2 };
    case 'MatMul': return { weight: 1, axis: 1 };
    case 'Gemm': return { weight: 1, axis: intAttribute(node, 'transB', 0) ? 0 : 1, bias: 2 };
    default: return undefined;
  }
}

export interface StaticQuantizeOptions {
  perChannel: boolean;
  reduceRange: boolean;
  filter: NodeFilter;
}

/** The float activations a static pass must calibrate: every non-constant input and output of the nodes it quantizes. */
export function staticTargets(model: ModelProto, filter: NodeFilter): { nodes: NodeProto[]; tensors: string[] } {
  const rewrite = new ModelRewrite(model);
  const nodes = rewrite.order.filter((n) => !n.domain && STATIC_OPS.has(n.opType ?? '') && filter.includes(n));
  const tensors = new Set<string>();
  for (const node of nodes) {
    const slot = weightSlot(node);
    (node.input ?? []).forEach((name, i) => {
      if (!name || rewrite.index.initializer(name) || i === slot?.bias || !rewrite.isFloat(name)) return;
      tensors.add(name);
    });
    for (const out of (node.output ?? []).slice(0, 1)) if (rewrite.isFloat(out)) tensors.add(out);
  }
  return { nodes, tensors: [...tensors] };
}

/**
 * Static INT8 in QDQ form: each calibrated activation gets QuantizeLinear(uint8) → DequantizeLinear and
 * every reader takes the dequantized value; weights are stored as symmetric int8 behind a DequantizeLinear
 * (per-channel with an axis, opset 13); Conv/Gemm biases as int32 with scale = input scale × weight scale.
 * ONNX Runtime recognises DQ → op → Q groups and runs them as QLinear kernels.
 */
export function quantizeStatic(model: ModelProto, ranges: ReadonlyMap<string, TensorRange>, options: StaticQuantizeOptions): RewriteResult {
  const { nodes: targets } = staticTargets(model, options.filter);
  const targetSet = new Set(targets);
  const rewrite = new ModelRewrite(model);
  const graphOutputs = rewrite.index.outputNames;
  const params = new Map<string, { scale: string; zeroPoint: string; value: number }>();
  const dequantized = new Map<string, string>();
  const renamedOutputs = new Map<string, string>();
  const skipped: RewriteResult['skipped'] = [];
  const quantizedNodes: string[] = [];

  const activationParams = (name: string) => {
    let p = params.get(name);
    if (!p) {
      const range = ranges.get(name)!;
      const { scale, zeroPoint } = uint8Params(range.min, range.max);
      p = {
        scale: rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${name}_scale`), [], new Float32Array([scale]))),
        zeroPoint: rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${name}_zero_point`), [], new Uint8Array([zeroPoint]))),
        value: Math.fround(scale),
      };
      params.set(name, p);
    }
    return p;
  };

  /** Q → DQ after a value is produced; readers switch to the DQ output. Graph outputs keep their name on the DQ side. */
  const insertQdq = (name: string) => {
    if (dequantized.has(name) || !ranges.has(name)) return;
    const p = activationParams(name);
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
    const quantize = targetSet.has(node);
    const inputs = (node.input ?? []).map((n) => dequantized.get(n) ?? n);
    let outputs = node.output ?? [];
    if (quantize) {
      const slot = weightSlot(node);
      if (slot) {
        const weightName = inputs[slot.weight] ?? '';
        const weight = rewrite.index.initializer(weightName);
        const activation = node.input?.[0] ?? '';
        const activationScale = params.get(activation)?.value;
        if (!weight || weight.dataType !== TensorDataType.FLOAT || activationScale === undefined) {
          skipped.push({ node: node.name || node.opType || '', reason: !weight ? 'its weight is not a constant initializer' : 'its input was not calibrated' });
        } else {
          const dims = weight.dims ?? [];
          const perChannel = options.perChannel && dims.length >= 2;
          const axis = perChannel ? slot.axis : undefined;
          const q = quantizeWeightsSymmetric(tensorToFloat32(weight), dims, options.reduceRange, axis);
          const channelDims = perChannel ? [dims[slot.axis]!] : [];
          const wq = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${weightName}_quantized`), dims, q.values));
          const ws = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${weightName}_scale`), channelDims, q.scales));
          const wz = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${weightName}_zero_point`), channelDims, new Int8Array(perChannel ? dims[slot.axis]! : 1)));
          const wdq = rewrite.names.next(`${weightName}_dequantized`);
          rewrite.emit('DequantizeLinear', [wq, ws, wz], [wdq], perChannel ? { axis: slot.axis } : {}, `${weightName}_DequantizeLinear`);
          inputs[slot.weight] = wdq;
          const biasName = slot.bias !== undefined ? node.input?.[slot.bias] : undefined;
          const bias = biasName ? rewrite.index.initializer(biasName) : undefined;
          const biasChannels = bias ? (bias.dims ?? []).reduce((a, b) => a * b, 1) : 0;
          if (bias && bias.dataType === TensorDataType.FLOAT && (bias.dims ?? []).length <= 1 && (!perChannel || biasChannels === q.scales.length)) {
            const values = tensorToFloat32(bias);
            const scales = Float32Array.from(values, (_, i) => Math.fround(activationScale * q.scales[perChannel ? i : 0]!));
            const int32 = Int32Array.from(values, (v, i) => Math.max(-2147483648, Math.min(2147483647, roundHalfEven(v / scales[i]!))));
            const bq = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${biasName}_quantized`), bias.dims ?? [], int32));
            const biasScale = perChannel ? scales : new Float32Array([scales[0] ?? activationScale * q.scales[0]!]);
            const bs = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${biasName}_scale`), perChannel ? [biasScale.length] : [], biasScale));
            const bz = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${biasName}_zero_point`), perChannel ? [biasScale.length] : [], new Int32Array(perChannel ? biasScale.length : 1)));
            const bdq = rewrite.names.next(`${biasName}_dequantized`);
            rewrite.emit('DequantizeLinear', [bq, bs, bz], [bdq], perChannel ? { axis: 0 } : {}, `${biasName}_DequantizeLinear`);
            inputs[slot.bias!] = bdq;
          }
        }
      } else {
        // Constant operands of Add/Mul/Concat are quantized like activations, from their own range.
        inputs.forEach((name, i) => {
          const original = node.input?.[i] ?? '';
          const constant = rewrite.index.initializer(original);
          if (!constant || constant.dataType !== TensorDataType.FLOAT) return;
          if (!dequantized.has(original)) {
            const values = tensorToFloat32(constant);
            let min = 0;
            let max = 0;
            for (const v of values) { if (v < min) min = v; if (v > max) max = v; }
            const { scale, zeroPoint } = uint8Params(min, max);
            const s = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${original}_scale`), [], new Float32Array([scale])));
            const z = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${original}_zero_point`), [], new Uint8Array([zeroPoint])));
            const q = Uint8Array.from(values, (v) => Math.max(0, Math.min(255, roundHalfEven(v / Math.fround(scale)) + zeroPoint)));
            const qn = rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${original}_quantized`), constant.dims ?? [], q));
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
    if (out && graphOutputs.has(out) && ranges.has(out) && quantize) {
      const renamed = rewrite.names.next(`${out}_float`);
      renamedOutputs.set(out, renamed);
      outputs = [renamed, ...outputs.slice(1)];
    }
    rewrite.keep({ ...node, input: inputs, output: outputs });
    for (const o of node.output ?? []) if (quantize || consumersQuantized(o)) insertQdq(o);
  }

  function consumersQuantized(name: string): boolean {
    return rewrite.index.consumers(name).some((c) => targetSet.has(c));
  }

  const result = rewrite.finish();
  requireOpset(result, options.perChannel ? 13 : 10);
  return { model: result, quantizedNodes, skipped };
}
