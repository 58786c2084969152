import { GraphIndex, attributeOf, intAttribute, intsAttribute, opsetVersion } from '../optimize/onnx/graph.ts';
import { ELEMENTWISE_OPS } from '../optimize/onnx/elementwise-ops.ts';
import type { ModelProto, TensorProto } from '../optimize/onnx/onnx-types.ts';
import { tensorValues } from '../optimize/onnx/tensor-values.ts';
import { CaliperError } from '../errors.ts';
import type { ModelSignature, TensorSignature } from './model-signature.ts';
import type { TensorMap } from './tensor.ts';

/**
 * Whether a model's dim 0 is a batch axis requests can be stacked along and split back by: every input's
 * first dimension is the batch, and every served output's first dimension provably is that same batch.
 */
export type BatchAxis = { batchable: true; proof: 'symbolic' | 'inferred' } | { batchable: false; reason: string };

const dimText = (t: TensorSignature): string =>
  `[${t.shape.map((d, i) => (d === -1 ? t.dimNames[i] || '?' : d)).join(', ')}]`;

/**
 * The load-time decision. First by names: every input's dim 0 is dynamic with one symbolic name, and every output's
 * dim 0 carries that name. Otherwise the graph is walked (`model`, when given) to prove each output row-aligned.
 */
export function batchAxisOf(signature: ModelSignature, model?: ModelProto): BatchAxis {
  const { inputs } = signature;
  const outputs = signature.outputs.filter((o) => o.isTensor !== false);
  if (inputs.length === 0) return { batchable: false, reason: 'the model has no inputs' };
  for (const input of inputs) {
    if (input.shape.length === 0 || input.shape[0] !== -1) {
      return { batchable: false, reason: `input "${input.name}" ${dimText(input)} has no dynamic first dimension` };
    }
  }
  const names = new Set(inputs.map((i) => i.dimNames[0] ?? ''));
  const batchName = names.size === 1 ? [...names][0]! : '';
  if (
    batchName !== '' &&
    outputs.every((o) => o.shape.length > 0 && o.shape[0] === -1 && o.dimNames[0] === batchName)
  ) {
    return { batchable: true, proof: 'symbolic' };
  }
  if (!model) {
    const odd = outputs.find(
      (o) => !(o.shape.length > 0 && o.shape[0] === -1 && o.dimNames[0] === batchName && batchName !== ''),
    );
    return {
      batchable: false,
      reason: `output "${odd?.name ?? '?'}" ${odd ? dimText(odd) : ''} does not name the inputs' batch dimension as its first`,
    };
  }
  const aligned = rowAlignedValues(model);
  for (const output of outputs) {
    if (!aligned.get(output.name)?.batch) {
      const declared = output.shape.length === 0 ? 'a scalar' : dimText(output);
      return {
        batchable: false,
        reason: `output "${output.name}" (${declared}) cannot be shown to have the batch as its first dimension (inputs ${inputs.map(dimText).join(', ')})`,
      };
    }
  }
  return { batchable: true, proof: 'inferred' };
}

/**
 * The run-time half of the rule: a run over `rows` stacked rows whose output does not have `rows` as its first
 * dimension cannot be split back to its requests. Returns the error that fails the whole batch, or undefined.
 */
export function misalignedOutputError(model: string, outputs: TensorMap, rows: number): CaliperError | undefined {
  for (const name in outputs) {
    const dims = outputs[name]!.dims;
    if (dims.length === 0 || dims[0] !== rows) {
      return new CaliperError(
        'CALIPER_OUTPUT_NOT_ALIGNED',
        `model "${model}": output "${name}" has shape [${dims.join(', ')}] for a batch of ${rows} rows; its first dimension is not the batch, so the batch fails rather than split it across requests`,
      );
    }
  }
  return undefined;
}

/** What is known of one value: whether dim 0 is the batch, and its dims where known (undefined = unknown size). */
interface Fact {
  batch: boolean;
  dims?: (number | undefined)[];
}

/**
 * Ops whose output row i comes from input row i alone: the element-wise ops, the per-sample normalizations
 * (BatchNormalization only in inference mode, checked below), type-changing element-wise ops, and convolutions and
 * pools (which keep dim 0 and change the others).
 */
const ELEMENTWISE = new Set([
  ...ELEMENTWISE_OPS,
  'LRN',
  'InstanceNormalization',
  'BatchNormalization',
  'Not',
  'IsNaN',
  'IsInf',
  'Cast',
  'CastLike',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'Conv',
  'ConvInteger',
  'QLinearConv',
  'ConvTranspose',
  'MaxPool',
  'AveragePool',
  'LpPool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'GlobalLpPool',
]);
const BROADCAST = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Max',
  'Min',
  'Sum',
  'Mean',
  'Mod',
  'BitShift',
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'And',
  'Or',
  'Xor',
  'Where',
  'PRelu',
  'BitwiseAnd',
  'BitwiseOr',
  'BitwiseXor',
]);
/** ONNX-ML operators that map each row of a 2-D input to one row of every output. */
const ML_ROWWISE = new Set([
  'LinearClassifier',
  'LinearRegressor',
  'SVMClassifier',
  'SVMRegressor',
  'TreeEnsembleClassifier',
  'TreeEnsembleRegressor',
  'TreeEnsemble',
  'Normalizer',
  'ArrayFeatureExtractor',
  'FeatureVectorizer',
]);
/** ONNX-ML operators that map each element to one element (any rank). */
const ML_ELEMENTWISE = new Set(['Scaler', 'Binarizer', 'Imputer', 'LabelEncoder', 'CategoryMapper']);

/**
 * Walks the graph forward from the inputs (dim 0 = batch) and marks each value whose first dimension provably is
 * the batch, row for row. Only operators with a known rule keep the mark; any other operator, a reduction, gather,
 * slice, reshape or transpose touching axis 0, or an output of NonZero/Compress/Shape clears it.
 */
function rowAlignedValues(model: ModelProto): Map<string, Fact> {
  const index = new GraphIndex(model.graph ?? {});
  const opset = opsetVersion(model);
  const facts = new Map<string, Fact>();
  const constants = new Map<string, number[]>();
  const constantValues = (t: TensorProto): number[] | undefined => {
    const dims = (t.dims ?? []).map(Number);
    if (dims.length > 1 || (dims[0] ?? 1) > 64) return undefined;
    try {
      const values = tensorValues(t);
      return Array.from(values as ArrayLike<number | bigint>, (v) => Number(v));
    } catch {
      return undefined;
    }
  };
  for (const [name, t] of index.initializers) {
    facts.set(name, { batch: false, dims: (t.dims ?? []).map(Number) });
    const values = constantValues(t);
    if (values) constants.set(name, values);
  }
  for (const input of index.graph.input ?? []) {
    if (!input.name || index.initializers.has(input.name)) continue;
    const dims = input.type?.tensorType?.shape?.dim?.map((d) =>
      d.dimValue !== undefined && d.dimValue !== null ? Number(d.dimValue) : undefined,
    );
    facts.set(input.name, { batch: true, ...(dims ? { dims: [undefined, ...dims.slice(1)] } : {}) });
  }
  const rankOf = (f: Fact | undefined): number | undefined => f?.dims?.length;
  const normalize = (axis: number, rank: number | undefined): number | undefined =>
    axis >= 0 ? axis : rank === undefined ? undefined : axis + rank;

  for (const node of index.topologicalOrder()) {
    const ins = (node.input ?? []).map((n) => (n ? facts.get(n) : undefined));
    const outs = node.output ?? [];
    const op = node.opType ?? '';
    const domain = node.domain ?? '';
    const first = ins[0];
    const mark = (i: number, fact: Fact): void => {
      if (outs[i]) facts.set(outs[i]!, fact);
    };
    const batchOf = (dims: (number | undefined)[] | undefined): Fact => ({
      batch: true,
      ...(dims ? { dims: [undefined, ...dims.slice(1)] } : {}),
    });
    const constInput = (i: number): number[] | undefined => constants.get(node.input?.[i] ?? '');
    const axesOf = (attrName: string, inputIndex: number): number[] | undefined =>
      intsAttribute(node, attrName) ?? constInput(inputIndex);

    if (op === 'Constant' && domain === '') {
      const t = attributeOf(node, 'value')?.t;
      if (t) {
        mark(0, { batch: false, dims: (t.dims ?? []).map(Number) });
        const values = constantValues(t);
        if (values && outs[0]) constants.set(outs[0], values);
      } else if (attributeOf(node, 'value_ints')) {
        const values = intsAttribute(node, 'value_ints')!;
        mark(0, { batch: false, dims: [values.length] });
        if (outs[0]) constants.set(outs[0], values);
      } else if (attributeOf(node, 'value_int') || attributeOf(node, 'value_float'))
        mark(0, { batch: false, dims: [] });
      continue;
    }
    if (domain === 'ai.onnx.ml') {
      const rank = rankOf(first);
      if (first?.batch && ML_ELEMENTWISE.has(op)) outs.forEach((_, i) => mark(i, batchOf(first.dims)));
      else if (
        first?.batch &&
        ML_ROWWISE.has(op) &&
        (rank === undefined ? false : rank >= 2) &&
        (op !== 'FeatureVectorizer' || ins.every((f) => f?.batch))
      ) {
        outs.forEach((_, i) => mark(i, { batch: true }));
      } else if (first?.batch && op === 'OneHotEncoder' && rank !== undefined)
        outs.forEach((_, i) => mark(i, { batch: true, dims: new Array<undefined>(rank + 1).fill(undefined) }));
      continue;
    }
    if (domain === 'com.microsoft' && (op === 'MatMulIntegerToFloat' || op === 'DynamicQuantizeMatMul')) {
      if (first?.batch && !ins[1]?.batch && (rankOf(first) ?? 0) >= 2 && (rankOf(ins[1]) ?? 99) <= 2)
        mark(0, batchOf(first.dims?.map(() => undefined)));
      continue;
    }
    if (domain !== '' && domain !== 'ai.onnx') continue;
    if (!first?.batch && !['Where', 'Gather', 'Concat', 'MatMul'].includes(op) && !BROADCAST.has(op)) continue;

    switch (true) {
      case ELEMENTWISE.has(op): {
        if (op === 'BatchNormalization' && intAttribute(node, 'training_mode', 0) === 1) break;
        const channels =
          op === 'Conv' ||
          op === 'ConvInteger' ||
          op === 'QLinearConv' ||
          op === 'ConvTranspose' ||
          op.includes('Pool');
        mark(0, batchOf(channels ? first!.dims?.map(() => undefined) : first!.dims));
        break;
      }
      case BROADCAST.has(op): {
        const ranks = ins.map(rankOf);
        if (ranks.some((r) => r === undefined) || !ins.some((f) => f?.batch)) break;
        const outRank = Math.max(...(ranks as number[]));
        const ok = ins.every((f, i) => (f!.batch ? ranks[i] === outRank : ranks[i]! < outRank || f!.dims![0] === 1));
        if (ok) mark(0, { batch: true, dims: new Array<undefined>(outRank).fill(undefined) });
        break;
      }
      case op === 'Softmax' ||
        op === 'LogSoftmax' ||
        op === 'Hardmax' ||
        op === 'LayerNormalization' ||
        op === 'LpNormalization': {
        const fallback = op === 'LayerNormalization' || op === 'LpNormalization' || opset >= 13 ? -1 : 1;
        const axis = normalize(intAttribute(node, 'axis', fallback), rankOf(first));
        if (axis !== undefined && axis > 0) {
          mark(0, batchOf(first!.dims));
          if (op === 'LayerNormalization') {
            mark(1, { batch: true });
            mark(2, { batch: true });
          }
        }
        break;
      }
      case op === 'MeanVarianceNormalization': {
        // Normalizes over `axes` (default 0, 2, 3: the batch included); rows stay apart only when 0 is not among them.
        const axes = (intsAttribute(node, 'axes') ?? [0, 2, 3]).map((a) => normalize(a, rankOf(first)));
        if (axes.every((a) => a !== undefined && a > 0)) mark(0, batchOf(first!.dims));
        break;
      }
      case op === 'ArgMax' || op === 'ArgMin': {
        const rank = rankOf(first);
        const axis = normalize(intAttribute(node, 'axis', 0), rank);
        const keep = intAttribute(node, 'keepdims', 1) === 1;
        if (axis !== undefined && axis > 0 && rank !== undefined)
          mark(0, { batch: true, dims: new Array<undefined>(keep ? rank : rank - 1).fill(undefined) });
        break;
      }
      case op.startsWith('Reduce'): {
        const rank = rankOf(first);
        const axes = axesOf('axes', 1);
        if (!axes || axes.length === 0 || rank === undefined) break;
        const normalized = axes.map((a) => normalize(a, rank));
        if (normalized.includes(0)) break;
        const keep = intAttribute(node, 'keepdims', 1) === 1;
        mark(0, { batch: true, dims: new Array<undefined>(keep ? rank : rank - axes.length).fill(undefined) });
        break;
      }
      case op === 'Flatten': {
        const axis = normalize(intAttribute(node, 'axis', 1), rankOf(first));
        if (axis === 1) mark(0, { batch: true, dims: [undefined, undefined] });
        break;
      }
      case op === 'Reshape': {
        const target = constInput(1);
        if (!target || target.length === 0 || (intAttribute(node, 'allowzero', 0) === 1 && target[0] === 0)) break;
        const rest = target.slice(1);
        const dims = first!.dims;
        const restKnown = rest.every((d) => d > 0);
        const inputRest = dims?.slice(1);
        const sameRows =
          target[0] === 0 ||
          (target[0] === -1 &&
            restKnown &&
            inputRest?.every((d) => d !== undefined) &&
            rest.reduce((a, b) => a * b, 1) === (inputRest as number[]).reduce((a, b) => a * b, 1));
        if (sameRows && !rest.includes(-1))
          mark(0, { batch: true, dims: [undefined, ...rest.map((d) => (d > 0 ? d : undefined))] });
        break;
      }
      case op === 'Transpose': {
        const perm = intsAttribute(node, 'perm');
        if (perm && perm[0] === 0) mark(0, { batch: true, dims: perm.map((p) => first!.dims?.[p]) });
        break;
      }
      case op === 'Squeeze' || op === 'Unsqueeze': {
        const axes = axesOf('axes', 1);
        const rank = rankOf(first);
        if (!axes || rank === undefined) break;
        const outRank = op === 'Squeeze' ? rank - axes.length : rank + axes.length;
        if (axes.map((a) => normalize(a, op === 'Squeeze' ? rank : outRank)).includes(0)) break;
        mark(0, { batch: true, dims: new Array<undefined>(outRank).fill(undefined) });
        break;
      }
      case op === 'Concat': {
        const rank = ins.map(rankOf).find((r) => r !== undefined);
        const axis = normalize(intAttribute(node, 'axis', 0), rank);
        if (axis !== undefined && axis > 0 && ins.some((f) => f?.batch))
          mark(0, { batch: true, dims: new Array<undefined>(rank!).fill(undefined) });
        break;
      }
      case op === 'Split': {
        const axis = normalize(intAttribute(node, 'axis', 0), rankOf(first));
        if (axis !== undefined && axis > 0) outs.forEach((_, i) => mark(i, batchOf(first!.dims?.map(() => undefined))));
        break;
      }
      case op === 'TopK': {
        const axis = normalize(intAttribute(node, 'axis', -1), rankOf(first));
        if (axis !== undefined && axis > 0) {
          mark(0, batchOf(first!.dims?.map(() => undefined)));
          mark(1, batchOf(first!.dims?.map(() => undefined)));
        }
        break;
      }
      case op === 'Gather': {
        const data = first;
        const indices = ins[1];
        const axis = normalize(intAttribute(node, 'axis', 0), rankOf(data));
        if (
          axis === 0 &&
          !data?.batch &&
          indices?.batch &&
          rankOf(indices) !== undefined &&
          rankOf(data) !== undefined
        ) {
          mark(0, { batch: true, dims: new Array<undefined>(rankOf(indices)! + rankOf(data)! - 1).fill(undefined) });
        } else if (axis !== undefined && axis > 0 && data?.batch && !indices?.batch && rankOf(indices) !== undefined) {
          mark(0, { batch: true, dims: new Array<undefined>(rankOf(data)! + rankOf(indices)! - 1).fill(undefined) });
        }
        break;
      }
      case op === 'MatMul' || op === 'MatMulInteger' || op === 'QLinearMatMul': {
        const b = ins[op === 'QLinearMatMul' ? 3 : 1];
        const ra = rankOf(first);
        const rb = rankOf(b);
        if (!first?.batch || ra === undefined || rb === undefined || ra < 2) break;
        if ((!b?.batch && rb <= 2) || (b?.batch && ra === rb && ra >= 3))
          mark(0, { batch: true, dims: new Array<undefined>(ra).fill(undefined) });
        break;
      }
      case op === 'Gemm':
        if (intAttribute(node, 'transA', 0) === 0 && !ins[1]?.batch)
          mark(0, { batch: true, dims: [undefined, undefined] });
        break;
      case op === 'Slice': {
        const axes = opset >= 10 ? constInput(3) : intsAttribute(node, 'axes');
        const starts = opset >= 10 ? constInput(1) : intsAttribute(node, 'starts');
        const rank = rankOf(first);
        const effective = axes ?? (starts ? starts.map((_, i) => i) : undefined);
        if (
          effective &&
          !effective.map((a) => normalize(a, rank)).includes(0) &&
          !effective.some((a) => normalize(a, rank) === undefined)
        ) {
          mark(0, batchOf(first!.dims?.map(() => undefined)));
        }
        break;
      }
      case op === 'Pad': {
        const pads = opset >= 11 ? constInput(1) : intsAttribute(node, 'pads');
        const rank = rankOf(first);
        const axes = opset >= 18 ? constInput(3) : undefined;
        if (pads && rank !== undefined && !axes && pads[0] === 0 && pads[rank] === 0)
          mark(0, batchOf(first!.dims?.map(() => undefined)));
        break;
      }
      case op === 'Tile': {
        const repeats = constInput(1);
        if (repeats && repeats[0] === 1) mark(0, batchOf(first!.dims?.map(() => undefined)));
        break;
      }
      case op === 'Expand': {
        const shape = constInput(1);
        const rank = rankOf(first);
        if (shape && rank !== undefined && shape.length <= rank && (shape.length < rank || shape[0] === 1))
          mark(0, batchOf(first!.dims?.map(() => undefined)));
        break;
      }
      case op === 'Resize' || op === 'Upsample': {
        const scales = constInput(op === 'Upsample' ? 1 : 2);
        if (scales && scales.length > 0 && scales[0] === 1) mark(0, batchOf(first!.dims?.map(() => undefined)));
        break;
      }
      default:
        break;
    }
  }
  return facts;
}
