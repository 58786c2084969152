import { AttributeType, TensorDataType } from '../onnx/onnx-schema.ts';
import { attributeOf, renameOuterReads, subgraphOuterNames } from '../onnx/graph.ts';
import type { AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/onnx-types.ts';
import { float32ToFloat16Bits, tensorToFloat32 } from '../onnx/tensor-values.ts';
import { ModelRewrite } from '../quantize/model-rewrite.ts';
import type { NodeFilter } from '../quantize/node-filter.ts';
import type { RewriteResult } from '../quantize/dynamic-quantizer.ts';

/**
 * Ops kept in float32 by default: ops whose float inputs are parameters rather than data (scales, ranges),
 * random generators, control flow (subgraphs are not converted) and ops ORT has no float16 CPU kernel for.
 */
export const DEFAULT_FP16_BLOCK_LIST = [
  'Resize',
  'Upsample',
  'Range',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'NonMaxSuppression',
  'RoiAlign',
  'TopK',
  'CumSum',
  'Einsum',
  'Loop',
  'If',
  'Scan',
  'Where',
  'STFT',
  'DFT',
  'ConstantOfShape',
  'EyeLike',
] as const;

export interface Fp16Options {
  /** Op types kept in float32 (default DEFAULT_FP16_BLOCK_LIST). */
  blockOps?: readonly string[];
  filter: NodeFilter;
  /** Keep float32 model inputs and outputs, with Casts at the boundary (default true). */
  keepIoTypes?: boolean;
}

/** float16's largest finite value and smallest positive (subnormal) value. */
const FLOAT16_MAX = 65504;
const FLOAT16_MIN_POSITIVE = 2 ** -24;

/**
 * Values float16 cannot hold are clamped into its range, as the usual converters do: beyond ±65504 (else ±inf) to
 * ±65504, non-zero magnitudes below 2^-24 (else 0: an epsilon of 1e-12 would divide by zero) to ±2^-24. Returns how
 * many were clamped and the extreme value seen, for the warning.
 */
function clampToFloat16(values: Float32Array): { clamped: number; example: number } {
  let clamped = 0;
  let example = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const magnitude = Math.abs(v);
    if (!Number.isFinite(v) || magnitude === 0) continue;
    if (magnitude > FLOAT16_MAX) values[i] = Math.sign(v) * FLOAT16_MAX;
    else if (magnitude < FLOAT16_MIN_POSITIVE) values[i] = Math.sign(v) * FLOAT16_MIN_POSITIVE;
    else continue;
    if (clamped++ === 0) example = v;
  }
  return { clamped, example };
}

/** Names of constants whose values were clamped, with how many and an example, collected during one conversion. */
type ClampNotes = string[];

function toFloat16Tensor(tensor: TensorProto, name = tensor.name, notes?: ClampNotes): TensorProto {
  const values = Float32Array.from(tensorToFloat32(tensor));
  const { clamped, example } = clampToFloat16(values);
  if (clamped > 0)
    notes?.push(
      `${name ?? 'a constant'}: ${clamped} value(s) outside float16's range (e.g. ${Number(example.toPrecision(6))}) clamped to ${Math.abs(example) > FLOAT16_MAX ? '±65504' : '±2^-24'}`,
    );
  const bits = float32ToFloat16Bits(values);
  return {
    ...(name !== undefined ? { name } : {}),
    dims: tensor.dims ?? [],
    dataType: TensorDataType.FLOAT16,
    rawData: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength),
  };
}

function convertAttributes(node: NodeProto, notes: ClampNotes): AttributeProto[] | undefined {
  return node.attribute?.map((a) => {
    if (a.type === AttributeType.TENSOR && a.t && a.t.dataType === TensorDataType.FLOAT)
      return { ...a, t: toFloat16Tensor(a.t, a.t.name || `${node.name || node.opType}.${a.name}`, notes) };
    if (node.opType === 'Cast' && a.name === 'to' && a.i === TensorDataType.FLOAT)
      return { ...a, i: TensorDataType.FLOAT16 };
    return a;
  });
}

function withElemType(info: ValueInfoProto, elemType: number): ValueInfoProto {
  return { ...info, type: { ...info.type, tensorType: { ...info.type?.tensorType, elemType } } };
}

/**
 * Converts float32 weights and activations to float16. Blocked ops run in float32 between Casts;
 * model inputs and outputs stay float32 (Cast at the boundary) unless keepIoTypes is false.
 */
export function convertToFloat16(model: ModelProto, options: Fp16Options): RewriteResult {
  const blocked = new Set(options.blockOps ?? DEFAULT_FP16_BLOCK_LIST);
  const keepIo = options.keepIoTypes ?? true;
  const rewrite = new ModelRewrite(model);
  const graph = model.graph ?? {};
  const half = new Set<string>();
  const castTo16 = new Map<string, string>();
  const castTo32 = new Map<string, string>();
  const isFloat = (name: string) => rewrite.types.get(name)?.elemType === TensorDataType.FLOAT;
  const skipped: RewriteResult['skipped'] = [];
  const converted: string[] = [];
  const clampNotes: ClampNotes = [];

  const initializers = new Map<string, TensorProto>();
  for (const [name, tensor] of rewrite.index.initializers) {
    if (tensor.dataType === TensorDataType.FLOAT) {
      initializers.set(name, toFloat16Tensor(tensor, name, clampNotes));
      half.add(name);
    }
  }
  for (const name of rewrite.index.inputNames) {
    if (!isFloat(name)) continue;
    if (keepIo) {
      const cast = rewrite.names.next(`${name}_fp16`);
      rewrite.emit('Cast', [name], [cast], { to: TensorDataType.FLOAT16 }, `${name}_Cast_fp16`);
      castTo16.set(name, cast);
    } else half.add(name);
  }
  const as16 = (name: string): string => {
    if (half.has(name) || !isFloat(name)) return name;
    let cast = castTo16.get(name);
    if (!cast) {
      cast = rewrite.names.next(`${name}_fp16`);
      rewrite.emit('Cast', [name], [cast], { to: TensorDataType.FLOAT16 }, `${name}_Cast_fp16`);
      castTo16.set(name, cast);
    }
    return cast;
  };
  const as32 = (name: string): string => {
    if (!half.has(name)) return name;
    let cast = castTo32.get(name);
    if (!cast) {
      cast = rewrite.names.next(`${name}_fp32`);
      rewrite.emit('Cast', [name], [cast], { to: TensorDataType.FLOAT }, `${name}_Cast_fp32`);
      castTo32.set(name, cast);
    }
    return cast;
  };

  const graphOutputs = rewrite.index.outputNames;
  for (const node of rewrite.order) {
    const label = node.name || `${node.opType}:${node.output?.[0]}`;
    const keepFloat =
      blocked.has(node.opType ?? '') ||
      !options.filter.includes(node) ||
      (node.domain !== undefined && node.domain !== '' && node.domain !== 'ai.onnx');
    if (keepFloat) {
      if (blocked.has(node.opType ?? '') && (node.input ?? []).some(isFloat))
        skipped.push({ node: label, reason: `${node.opType} is on the float16 block list` });
      // Its subgraphs stay float32 too: what they read from outside (an initializer, a converted activation) is read through a Cast.
      const outerReads = new Map<string, string>();
      for (const name of subgraphOuterNames(node)) if (half.has(name)) outerReads.set(name, as32(name));
      const attribute =
        outerReads.size === 0
          ? node.attribute
          : node.attribute?.map((attr) => ({
              ...attr,
              ...(attr.g ? { g: renameOuterReads(attr.g, outerReads) } : {}),
              ...(attr.graphs ? { graphs: attr.graphs.map((g) => renameOuterReads(g, outerReads)) } : {}),
            }));
      rewrite.keep({
        ...node,
        input: (node.input ?? []).map((n) => (n ? as32(n) : n)),
        ...(attribute ? { attribute } : {}),
      });
      continue;
    }
    const outputs = (node.output ?? []).map((o) => {
      const producesFloat =
        isFloat(o) || (node.opType === 'Cast' && attributeOf(node, 'to')?.i === TensorDataType.FLOAT);
      if (!producesFloat || !o) return o;
      half.add(o);
      return graphOutputs.has(o) && keepIo ? rewrite.names.next(`${o}_fp16`) : o;
    });
    rewrite.keep({
      ...node,
      input: (node.input ?? []).map((n) => (n ? as16(n) : n)),
      output: outputs,
      attribute: convertAttributes(node, clampNotes) ?? [],
    });
    (node.output ?? []).forEach((o, i) => {
      if (outputs[i] !== o) rewrite.emit('Cast', [outputs[i]!], [o], { to: TensorDataType.FLOAT }, `${o}_Cast_fp32`);
    });
    if ((node.input ?? []).some((n) => half.has(n) || castTo16.has(n))) converted.push(label);
  }

  const result = rewrite.finish();
  const kept = new Set((result.graph?.initializer ?? []).map((t) => t.name));
  const halfOutputs = !keepIo;
  result.graph = {
    ...result.graph,
    initializer: (result.graph?.initializer ?? []).map((t) =>
      initializers.get(t.name ?? '') && kept.has(t.name) ? initializers.get(t.name ?? '')! : t,
    ),
    valueInfo: [],
    input: (result.graph?.input ?? []).map((v) =>
      (initializers.has(v.name ?? '') || !keepIo) && isFloat(v.name ?? '')
        ? withElemType(v, TensorDataType.FLOAT16)
        : v,
    ),
    output: (graph.output ?? []).map((v) =>
      halfOutputs && half.has(v.name ?? '') ? withElemType(v, TensorDataType.FLOAT16) : v,
    ),
  };
  return {
    model: result,
    quantizedNodes: converted,
    skipped,
    ...(clampNotes.length > 0 ? { warnings: clampNotes } : {}),
  };
}
