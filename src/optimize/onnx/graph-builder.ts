import { AttributeType, TensorDataType } from './onnx-schema.ts';
import type { AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from './onnx-types.ts';

export type AttributeValue =
  | number
  | string
  | number[]
  | string[]
  | TensorProto
  | { float: number }
  | { floats: number[] };

export interface GraphValue {
  name: string;
  elemType: number;
  shape: (number | string)[];
}

/** Builds a float or int64 TensorProto initializer with raw little-endian data. */
export function tensorFromArray(
  name: string,
  dims: number[],
  data: Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array,
  dataType?: number,
): TensorProto {
  const type =
    dataType ??
    (data instanceof Float32Array
      ? TensorDataType.FLOAT
      : data instanceof BigInt64Array
        ? TensorDataType.INT64
        : data instanceof Int32Array
          ? TensorDataType.INT32
          : data instanceof Int8Array
            ? TensorDataType.INT8
            : TensorDataType.UINT8);
  return { name, dims, dataType: type, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() };
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? { name, type: AttributeType.INT, i: value }
      : { name, type: AttributeType.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) {
      return {
        name,
        type: AttributeType.STRINGS,
        strings: (value as string[]).map((v) => new TextEncoder().encode(v)),
      };
    }
    const numbers = value as number[];
    return numbers.every(Number.isInteger)
      ? { name, type: AttributeType.INTS, ints: numbers }
      : { name, type: AttributeType.FLOATS, floats: numbers };
  }
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: value.floats };
  return { name, type: AttributeType.TENSOR, t: value };
}

function valueInfo(value: GraphValue): ValueInfoProto {
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: value.elemType,
        shape: { dim: value.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** A small imperative builder for ONNX graphs: add inputs, initializers and nodes, then build a ModelProto. */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private counter = 0;

  constructor(
    private readonly graphName: string,
    private readonly opset = 17,
  ) {}

  input(value: GraphValue): string {
    this.inputs.push(valueInfo(value));
    return value.name;
  }

  output(value: GraphValue): string {
    this.outputs.push(valueInfo(value));
    return value.name;
  }

  initializer(tensor: TensorProto): string {
    this.initializers.push(tensor);
    return tensor.name ?? '';
  }

  /** Adds a node; returns its output names (generated unless given). */
  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    outputs?: string[],
    domain?: string,
  ): string[] {
    const id = this.counter++;
    const outputNames = outputs ?? [`${opType.toLowerCase()}_${id}`];
    this.nodes.push({
      name: `${opType}_${id}`,
      opType,
      input: inputs,
      output: outputNames,
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
      ...(domain ? { domain } : {}),
    });
    return outputNames;
  }

  build(producerName = 'caliper'): ModelProto {
    return {
      irVersion: 8,
      producerName,
      producerVersion: '0.1.0',
      opsetImport: [{ domain: '', version: this.opset }],
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }
}
