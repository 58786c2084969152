import { TensorDataType } from '../onnx/onnx-schema.ts';
import { floatAttribute, intAttribute, requireOpset } from '../onnx/graph.ts';
import type { ModelProto, NodeProto } from '../onnx/onnx-types.ts';
import { tensorToFloat32 } from '../onnx/tensor-values.ts';
import { tensorFromArray } from '../onnx/graph-builder.ts';
import { ModelRewrite } from './model-rewrite.ts';
import { quantizeWeightsSymmetric } from './quant-params.ts';
import type { NodeFilter } from './node-filter.ts';

export interface DynamicQuantizeOptions {
  perChannel: boolean;
  reduceRange: boolean;
  filter: NodeFilter;
}

export interface RewriteResult {
  model: ModelProto;
  quantizedNodes: string[];
  /** Nodes of a quantizable type left in float, with the reason. */
  skipped: { node: string; reason: string }[];
  /** What the rewrite changed that the user should know (e.g. constants clamped into float16's range). */
  warnings?: string[];
}

function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** The float weight matrix [K, N] a MatMul or Gemm multiplies by, or why it cannot be quantized. */
function weightMatrix(
  rewrite: ModelRewrite,
  node: NodeProto,
): { weights: Float32Array; k: number; n: number } | string {
  const tensor = rewrite.index.initializer(node.input?.[1] ?? '');
  if (!tensor) return 'its weight input is not a constant initializer';
  if (tensor.dataType !== TensorDataType.FLOAT) return 'its weight is not float32';
  if ((tensor.dims ?? []).length !== 2) return `its weight has rank ${(tensor.dims ?? []).length}, expected 2`;
  if (!rewrite.isFloat(node.input?.[0] ?? '')) return 'its activation input is not float32';
  let [k, n] = tensor.dims as [number, number];
  let weights = tensorToFloat32(tensor);
  if (node.opType === 'Gemm') {
    if (intAttribute(node, 'transA', 0) !== 0) return 'Gemm with transA is not rewritten';
    if (intAttribute(node, 'transB', 0) !== 0) {
      weights = transpose2d(weights, k, n);
      [k, n] = [n, k];
    }
    const alpha = floatAttribute(node, 'alpha', 1);
    if (alpha !== 1) weights = weights.map((w) => w * alpha);
  }
  return { weights, k, n };
}

/** Gemm's bias C scaled by beta, as a float initializer name, or why not. */
function gemmBias(rewrite: ModelRewrite, node: NodeProto): string | undefined | { error: string } {
  const c = node.input?.[2];
  if (!c) return undefined;
  const beta = floatAttribute(node, 'beta', 1);
  if (beta === 1) return c;
  const tensor = rewrite.index.initializer(c);
  if (!tensor) return { error: 'Gemm with beta ≠ 1 and a non-constant C is not rewritten' };
  const scaled = tensorToFloat32(tensor).map((v) => v * beta);
  return rewrite.addInitializer(tensorFromArray(rewrite.names.next(`${c}_scaled`), tensor.dims ?? [], scaled));
}

/**
 * Dynamic INT8: MatMul/Gemm weights become symmetric int8 initializers; activations are quantized at run
 * time. Emits DynamicQuantizeLinear → MatMulInteger → Cast → Mul(Mul(a_scale, w_scale)) [→ Add bias],
 * the standard-domain pattern ONNX Runtime fuses into DynamicQuantizeMatMul at load time.
 */
export function quantizeDynamic(model: ModelProto, options: DynamicQuantizeOptions): RewriteResult {
  const rewrite = new ModelRewrite(model);
  const quantizedNodes: string[] = [];
  const skipped: RewriteResult['skipped'] = [];
  const activationQuant = new Map<string, [string, string, string]>();

  for (const node of rewrite.order) {
    const op = node.opType ?? '';
    if ((op !== 'MatMul' && op !== 'Gemm') || node.domain) {
      rewrite.keep(node);
      continue;
    }
    const label = node.name || `${op}:${node.output?.[0]}`;
    if (!options.filter.includes(node)) {
      skipped.push({ node: label, reason: 'excluded' });
      rewrite.keep(node);
      continue;
    }
    const matrix = weightMatrix(rewrite, node);
    const bias = op === 'Gemm' ? gemmBias(rewrite, node) : undefined;
    if (typeof matrix === 'string' || (typeof bias === 'object' && bias)) {
      skipped.push({ node: label, reason: typeof matrix === 'string' ? matrix : (bias as { error: string }).error });
      rewrite.keep(node);
      continue;
    }
    const { weights, k, n } = matrix;
    const quantized = quantizeWeightsSymmetric(
      weights,
      [k, n],
      options.reduceRange,
      options.perChannel ? 1 : undefined,
    );
    const base = node.input![1]!;
    const wq = rewrite.addInitializer(
      tensorFromArray(rewrite.names.next(`${base}_quantized`), [k, n], quantized.values),
    );
    const channelDims = options.perChannel ? [n] : [];
    const ws = rewrite.addInitializer(
      tensorFromArray(rewrite.names.next(`${base}_scale`), channelDims, quantized.scales),
    );
    const wz = rewrite.addInitializer(
      tensorFromArray(rewrite.names.next(`${base}_zero_point`), channelDims, new Int8Array(options.perChannel ? n : 1)),
    );

    const input = node.input![0]!;
    let aq = activationQuant.get(input);
    if (!aq) {
      aq = [
        rewrite.names.next(`${input}_quantized`),
        rewrite.names.next(`${input}_scale`),
        rewrite.names.next(`${input}_zero_point`),
      ];
      rewrite.emit('DynamicQuantizeLinear', [input], aq, {}, `${input}_DynamicQuantizeLinear`);
      activationQuant.set(input, aq);
    }
    const stem = node.name || node.output![0]!;
    const int32 = rewrite.names.next(`${stem}_int32`);
    rewrite.emit('MatMulInteger', [aq[0], wq, aq[2], wz], [int32], {}, `${stem}_MatMulInteger`);
    const asFloat = rewrite.names.next(`${stem}_float`);
    rewrite.emit('Cast', [int32], [asFloat], { to: TensorDataType.FLOAT }, `${stem}_Cast`);
    const multiplier = rewrite.names.next(`${stem}_multiplier`);
    rewrite.emit('Mul', [aq[1], ws], [multiplier], {}, `${stem}_scale_Mul`);
    const output = node.output![0]!;
    if (typeof bias === 'string') {
      const scaled = rewrite.names.next(`${stem}_scaled`);
      rewrite.emit('Mul', [asFloat, multiplier], [scaled], {}, `${stem}_Mul`);
      rewrite.emit('Add', [scaled, bias], [output], {}, `${stem}_bias_Add`);
    } else {
      rewrite.emit('Mul', [asFloat, multiplier], [output], {}, `${stem}_Mul`);
    }
    quantizedNodes.push(label);
  }
  const result = rewrite.finish();
  requireOpset(result, 11);
  return { model: result, quantizedNodes, skipped };
}
