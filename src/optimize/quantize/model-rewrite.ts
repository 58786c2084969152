import { AttributeType } from '../onnx/onnx-schema.ts';
import { GraphIndex, NameAllocator, nodeInputs } from '../onnx/graph.ts';
import type { AttributeProto, ModelProto, NodeProto, TensorProto } from '../onnx/onnx-types.ts';
import { inferValueTypes, type ValueType } from '../onnx/shape-inference.ts';

export type SimpleAttribute = number | number[] | { float: number };

function toAttribute(name: string, value: SimpleAttribute): AttributeProto {
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if (typeof value === 'number') return { name, type: AttributeType.INT, i: value };
  return { name, type: AttributeType.FLOAT, f: value.float };
}

/**
 * One pass of graph rewriting: walks the original nodes in topological order while the caller emits
 * replacement nodes and initializers; `finish` drops initializers nothing reads any more.
 */
export class ModelRewrite {
  readonly index: GraphIndex;
  readonly names: NameAllocator;
  readonly types: Map<string, ValueType>;
  readonly order: NodeProto[];
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];

  constructor(readonly model: ModelProto) {
    this.index = new GraphIndex(model.graph ?? {});
    this.names = new NameAllocator(this.index.allNames());
    this.types = inferValueTypes(model);
    this.order = this.index.topologicalOrder();
  }

  keep(node: NodeProto): void {
    this.nodes.push(node);
  }

  emit(
    opType: string,
    inputs: string[],
    outputs: string[],
    attributes: Record<string, SimpleAttribute> = {},
    baseName = opType,
  ): NodeProto {
    const node: NodeProto = {
      name: this.names.next(baseName),
      opType,
      input: inputs,
      output: outputs,
      attribute: Object.entries(attributes).map(([n, v]) => toAttribute(n, v)),
    };
    this.nodes.push(node);
    return node;
  }

  addInitializer(tensor: TensorProto): string {
    this.initializers.push(tensor);
    return tensor.name!;
  }

  /** Whether a value is float32 as far as inference knows (unknown counts as float for graph inputs to float ops). */
  isFloat(name: string): boolean {
    const type = this.types.get(name);
    return type === undefined || type.elemType === 1;
  }

  finish(): ModelProto {
    const graph = this.model.graph ?? {};
    const used = new Set<string>();
    // Subgraphs (If/Loop/Scan bodies) read outer values by name: an initializer only they read is still used.
    for (const node of this.nodes) for (const n of nodeInputs(node)) used.add(n);
    for (const o of graph.output ?? []) used.add(o.name ?? '');
    const initializers = [...(graph.initializer ?? []), ...this.initializers].filter((t) => used.has(t.name ?? ''));
    const kept = new Set(initializers.map((t) => t.name));
    const inputs = (graph.input ?? []).filter((v) => !this.index.initializers.has(v.name ?? '') || kept.has(v.name));
    const liveValues = new Set<string>([...used, ...this.nodes.flatMap((n) => n.output ?? [])]);
    const valueInfo = (graph.valueInfo ?? []).filter((v) => liveValues.has(v.name ?? ''));
    return {
      ...this.model,
      graph: { ...graph, node: this.nodes, initializer: initializers, input: inputs, valueInfo },
    };
  }
}
