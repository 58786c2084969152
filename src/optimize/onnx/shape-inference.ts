import { ELEMENTWISE_OPS, NORMALIZATION_OPS } from './elementwise-ops.ts';
import { GraphIndex, attributeOf, intAttribute, intsAttribute } from './graph.ts';
import { TensorDataType } from './onnx-schema.ts';
import type { ModelProto, NodeProto, ValueInfoProto } from './onnx-types.ts';
import { tensorValues } from './tensor-values.ts';

/** A value's element type and, where known, its shape (a dimension is a number, a symbolic name or unknown). */
export interface ValueType {
  elemType: number;
  shape?: (number | string | undefined)[];
}

type Dim = number | string | undefined;

/** Ops whose output 0 is typed as input 0 (DequantizeLinear's element type is fixed below). */
const SAME_AS_FIRST = new Set([...ELEMENTWISE_OPS, ...NORMALIZATION_OPS, 'PRelu', 'DequantizeLinear']);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Mod', 'BitShift']);
const COMPARISON = new Set([
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
]);
const POOLING = new Set(['MaxPool', 'AveragePool', 'LpPool']);
const GLOBAL_POOLING = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']);

export function valueTypeOf(info: ValueInfoProto): ValueType | undefined {
  const tensor = info.type?.tensorType;
  if (!tensor?.elemType) return undefined;
  const dims = tensor.shape?.dim;
  return dims
    ? { elemType: tensor.elemType, shape: dims.map((d) => d.dimValue ?? d.dimParam) }
    : { elemType: tensor.elemType };
}

function broadcastShapes(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const dims = (shapes as Dim[][]).map((shape) =>
      shape.length - rank + i >= 0 ? shape[shape.length - rank + i] : 1,
    );
    const concrete = dims.find((d) => d !== 1 && d !== undefined);
    out.push(concrete ?? (dims.some((d) => d === undefined) ? undefined : 1));
  }
  return out;
}

function poolShape(
  node: NodeProto,
  input: Dim[] | undefined,
  channels: Dim,
  kernelShape?: number[],
): Dim[] | undefined {
  if (!input || input.length < 3) return undefined;
  const kernel = intsAttribute(node, 'kernel_shape') ?? kernelShape;
  if (!kernel) return undefined;
  const spatial = input.length - 2;
  const strides = intsAttribute(node, 'strides') ?? new Array<number>(spatial).fill(1);
  const pads = intsAttribute(node, 'pads') ?? new Array<number>(spatial * 2).fill(0);
  const dilations = intsAttribute(node, 'dilations') ?? new Array<number>(spatial).fill(1);
  const autoPad = attributeOf(node, 'auto_pad')?.s;
  const mode = autoPad ? new TextDecoder().decode(autoPad) : 'NOTSET';
  const ceil = intAttribute(node, 'ceil_mode', 0) === 1;
  const out: Dim[] = [input[0], channels];
  for (let i = 0; i < spatial; i++) {
    const size = input[i + 2];
    if (typeof size !== 'number') {
      out.push(undefined);
      continue;
    }
    if (mode === 'SAME_UPPER' || mode === 'SAME_LOWER') {
      out.push(Math.ceil(size / strides[i]!));
      continue;
    }
    const effective = (kernel[i]! - 1) * dilations[i]! + 1;
    const padded = mode === 'VALID' ? size : size + pads[i]! + pads[i + spatial]!;
    const round = ceil ? Math.ceil : Math.floor;
    out.push(round((padded - effective) / strides[i]!) + 1);
  }
  return out;
}

/**
 * Infers element types (and shapes where cheap) for every value, from graph inputs, initializers and
 * value infos forward through the ops the optimization tools meet. Unknown ops leave their outputs unknown.
 */
export function inferValueTypes(model: ModelProto): Map<string, ValueType> {
  const graph = model.graph ?? {};
  const index = new GraphIndex(graph);
  const types = new Map<string, ValueType>();
  for (const [name, t] of index.initializers) types.set(name, { elemType: t.dataType ?? 0, shape: t.dims ?? [] });
  for (const [name, info] of index.valueInfos) {
    const type = valueTypeOf(info);
    if (type && !types.has(name)) types.set(name, type);
  }
  const constants = new Map<string, number[]>();
  for (const [name, t] of index.initializers) {
    if (t.dataType === TensorDataType.INT64 && (t.dims ?? []).length <= 1) {
      constants.set(name, Array.from(tensorValues(t) as BigInt64Array, Number));
    }
  }

  for (const node of index.topologicalOrder()) {
    const inputs = (node.input ?? []).map((n) => (n ? types.get(n) : undefined));
    const first = inputs[0];
    const outputs = node.output ?? [];
    const set = (i: number, type: ValueType | undefined) => {
      const name = outputs[i];
      if (!name || !type) return;
      const known = types.get(name);
      if (!known || (!known.shape && type.shape)) types.set(name, known && !type.shape ? known : type);
    };
    const op = node.opType ?? '';
    if (node.domain && node.domain !== 'ai.onnx') {
      if (op === 'MatMulIntegerToFloat' || op === 'DynamicQuantizeMatMul') set(0, { elemType: TensorDataType.FLOAT });
      continue;
    }
    if (op === 'Constant') {
      const t = attributeOf(node, 'value')?.t;
      if (t) {
        set(0, { elemType: t.dataType ?? 0, shape: t.dims ?? [] });
        if (t.dataType === TensorDataType.INT64 && (t.dims ?? []).length <= 1)
          constants.set(outputs[0]!, Array.from(tensorValues(t) as BigInt64Array, Number));
      } else if (attributeOf(node, 'value_float')) set(0, { elemType: TensorDataType.FLOAT, shape: [] });
      else if (attributeOf(node, 'value_floats')) set(0, { elemType: TensorDataType.FLOAT });
      else if (attributeOf(node, 'value_int')) set(0, { elemType: TensorDataType.INT64, shape: [] });
      else if (attributeOf(node, 'value_ints')) set(0, { elemType: TensorDataType.INT64 });
      continue;
    }
    if (!first && !['Cast', 'Shape', 'Size', 'ConstantOfShape'].includes(op)) {
      continue;
    }
    switch (true) {
      case op === 'DequantizeLinear':
        set(0, {
          elemType: inputs[1]?.elemType ?? TensorDataType.FLOAT,
          ...(first?.shape ? { shape: first.shape } : {}),
        });
        break;
      case op === 'QuantizeLinear':
        set(0, {
          elemType: inputs[2]?.elemType ?? TensorDataType.UINT8,
          ...(first?.shape ? { shape: first.shape } : {}),
        });
        break;
      case op === 'DynamicQuantizeLinear':
        set(0, { elemType: TensorDataType.UINT8, ...(first?.shape ? { shape: first.shape } : {}) });
        set(1, { elemType: TensorDataType.FLOAT, shape: [] });
        set(2, { elemType: TensorDataType.UINT8, shape: [] });
        break;
      case SAME_AS_FIRST.has(op):
        set(0, first);
        break;
      case BROADCAST.has(op): {
        set(0, { elemType: first!.elemType, shape: broadcastShapes(inputs.map((t) => t?.shape)) ?? [] });
        if (inputs.some((t) => !t?.shape)) types.set(outputs[0]!, { elemType: first!.elemType });
        break;
      }
      case COMPARISON.has(op):
        set(0, {
          elemType: TensorDataType.BOOL,
          ...(inputs.every((t) => t?.shape) ? { shape: broadcastShapes(inputs.map((t) => t?.shape)) ?? [] } : {}),
        });
        break;
      case op === 'Where':
        set(0, inputs[1] ? { elemType: inputs[1].elemType } : undefined);
        break;
      case op === 'MatMul' || op === 'MatMulInteger': {
        const elemType = op === 'MatMul' ? first!.elemType : TensorDataType.INT32;
        const a = first!.shape;
        const b = inputs[1]?.shape;
        if (a && b && a.length >= 2 && b.length >= 2) {
          const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]) ?? [];
          set(0, { elemType, shape: [...batch, a[a.length - 2], b[b.length - 1]] });
        } else if (a && b && a.length >= 2 && b.length === 1) {
          set(0, { elemType, shape: a.slice(0, -1) });
        } else set(0, { elemType });
        break;
      }
      case op === 'Gemm': {
        const a = first!.shape;
        const b = inputs[1]?.shape;
        const transA = intAttribute(node, 'transA', 0);
        const transB = intAttribute(node, 'transB', 0);
        set(
          0,
          a && b
            ? { elemType: first!.elemType, shape: [a[transA ? 1 : 0], b[transB ? 0 : 1]] }
            : { elemType: first!.elemType },
        );
        break;
      }
      case op === 'Conv': {
        const w = inputs[1]?.shape;
        const kernel = w?.slice(2).every((d) => typeof d === 'number') ? (w.slice(2) as number[]) : undefined;
        const shape = w ? poolShape(node, first!.shape, w[0], kernel) : undefined;
        set(0, { elemType: first!.elemType, ...(shape ? { shape } : {}) });
        break;
      }
      case POOLING.has(op):
        set(0, {
          elemType: first!.elemType,
          ...(first!.shape && poolShape(node, first!.shape, first!.shape[1])
            ? { shape: poolShape(node, first!.shape, first!.shape[1])! }
            : {}),
        });
        break;
      case GLOBAL_POOLING.has(op):
        set(0, {
          elemType: first!.elemType,
          ...(first!.shape ? { shape: first!.shape.map((d, i) => (i < 2 ? d : 1)) } : {}),
        });
        break;
      case op === 'Flatten': {
        const s = first!.shape;
        let axis = intAttribute(node, 'axis', 1);
        if (s && axis < 0) axis += s.length;
        const product = (dims: Dim[]) =>
          dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((x, y) => x * y, 1) : undefined;
        set(0, {
          elemType: first!.elemType,
          ...(s ? { shape: [product(s.slice(0, axis)), product(s.slice(axis))] } : {}),
        });
        break;
      }
      case op === 'Reshape': {
        const target = constants.get(node.input?.[1] ?? '');
        const s = first!.shape;
        if (target && s?.every((d) => typeof d === 'number')) {
          const total = (s as number[]).reduce((x, y) => x * y, 1);
          const dims = target.map((d, i) => (d === 0 ? (s[i] as number) : d));
          const known = dims.filter((d) => d !== -1).reduce((x, y) => x * y, 1);
          set(0, { elemType: first!.elemType, shape: dims.map((d) => (d === -1 ? total / known : d)) });
        } else
          set(0, {
            elemType: first!.elemType,
            ...(target ? { shape: target.map((d) => (d > 0 ? d : undefined)) } : {}),
          });
        break;
      }
      case op === 'Transpose': {
        const s = first!.shape;
        const perm = intsAttribute(node, 'perm') ?? (s ? s.map((_, i) => s.length - 1 - i) : undefined);
        set(0, { elemType: first!.elemType, ...(s && perm ? { shape: perm.map((p) => s[p]) } : {}) });
        break;
      }
      case op === 'Concat': {
        const axisRaw = intAttribute(node, 'axis', 0);
        const shapes = inputs.map((t) => t?.shape);
        if (shapes.every((s) => s)) {
          const rank = shapes[0]!.length;
          const axis = axisRaw < 0 ? axisRaw + rank : axisRaw;
          const along = shapes.map((s) => s![axis]);
          const total = along.every((d) => typeof d === 'number')
            ? (along as number[]).reduce((x, y) => x + y, 0)
            : undefined;
          set(0, { elemType: first!.elemType, shape: shapes[0]!.map((d, i) => (i === axis ? total : d)) });
        } else set(0, { elemType: first!.elemType });
        break;
      }
      case op === 'Cast':
        set(0, { elemType: intAttribute(node, 'to', 0), ...(first?.shape ? { shape: first.shape } : {}) });
        break;
      case op === 'CastLike':
        set(
          0,
          inputs[1] ? { elemType: inputs[1].elemType, ...(first?.shape ? { shape: first.shape } : {}) } : undefined,
        );
        break;
      case op === 'Shape' || op === 'Size' || op === 'ArgMax' || op === 'ArgMin' || op === 'NonZero':
        set(0, { elemType: TensorDataType.INT64 });
        break;
      case [
        'Gather',
        'GatherElements',
        'GatherND',
        'Squeeze',
        'Unsqueeze',
        'Slice',
        'Expand',
        'Tile',
        'Pad',
        'ReduceMean',
        'ReduceSum',
        'ReduceMax',
        'ReduceMin',
        'ReduceProd',
        'ReduceL2',
        'Resize',
        'Upsample',
        'DepthToSpace',
        'SpaceToDepth',
        'Split',
        'TopK',
        'CumSum',
        'Einsum',
        'ScatterElements',
        'ScatterND',
        'ConvTranspose',
        'MaxRoiPool',
        'RoiAlign',
      ].includes(op):
        for (let i = 0; i < outputs.length; i++)
          set(i, { elemType: op === 'TopK' && i === 1 ? TensorDataType.INT64 : first!.elemType });
        break;
      default:
        break;
    }
  }
  return types;
}
