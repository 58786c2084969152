import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from './onnx-types.ts';

/**
 * A read-only index over one GraphProto: producers, consumers, initializers, value infos and a
 * topological order. Rewrites build new node lists and index the result again.
 */
export class GraphIndex {
  readonly initializers = new Map<string, TensorProto>();
  readonly valueInfos = new Map<string, ValueInfoProto>();
  private readonly producers = new Map<string, NodeProto>();
  private readonly consumerLists = new Map<string, NodeProto[]>();
  readonly inputNames: Set<string>;
  readonly outputNames: Set<string>;

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer ?? []) if (t.name) this.initializers.set(t.name, t);
    for (const v of [...(graph.valueInfo ?? []), ...(graph.input ?? []), ...(graph.output ?? [])]) {
      if (v.name) this.valueInfos.set(v.name, v);
    }
    this.inputNames = new Set((graph.input ?? []).map((v) => v.name ?? '').filter((n) => !this.initializers.has(n)));
    this.outputNames = new Set((graph.output ?? []).map((v) => v.name ?? ''));
    for (const node of graph.node ?? []) {
      for (const out of node.output ?? []) if (out) this.producers.set(out, node);
      for (const input of nodeInputs(node)) {
        const list = this.consumerLists.get(input);
        if (list) list.push(node);
        else this.consumerLists.set(input, [node]);
      }
    }
  }

  get nodes(): readonly NodeProto[] {
    return this.graph.node ?? [];
  }

  producer(name: string): NodeProto | undefined {
    return this.producers.get(name);
  }

  consumers(name: string): readonly NodeProto[] {
    return this.consumerLists.get(name) ?? [];
  }

  initializer(name: string): TensorProto | undefined {
    return this.initializers.get(name);
  }

  /** Every name used in the graph (values, initializers, nodes), for allocating fresh names. */
  allNames(): Set<string> {
    const names = new Set<string>([...this.initializers.keys(), ...this.valueInfos.keys()]);
    for (const node of this.nodes) {
      if (node.name) names.add(node.name);
      for (const n of [...(node.input ?? []), ...(node.output ?? [])]) names.add(n);
    }
    return names;
  }

  /** Nodes in an order where every producer precedes its consumers (Kahn's algorithm, stable). */
  topologicalOrder(): NodeProto[] {
    const nodes = this.nodes;
    const available = new Set<string>([...this.initializers.keys(), ...this.inputNames, '']);
    const remaining = new Map<NodeProto, number>();
    const waiting = new Map<string, NodeProto[]>();
    const ready: NodeProto[] = [];
    for (const node of nodes) {
      const missing = new Set(nodeInputs(node).filter((n) => !available.has(n) && this.producers.has(n)));
      remaining.set(node, missing.size);
      for (const name of missing) {
        const list = waiting.get(name);
        if (list) list.push(node);
        else waiting.set(name, [node]);
      }
      if (missing.size === 0) ready.push(node);
    }
    const order: NodeProto[] = [];
    for (let i = 0; i < ready.length; i++) {
      const node = ready[i]!;
      order.push(node);
      for (const out of node.output ?? []) {
        for (const consumer of waiting.get(out) ?? []) {
          const left = remaining.get(consumer)! - 1;
          remaining.set(consumer, left);
          if (left === 0) ready.push(consumer);
        }
        waiting.delete(out);
      }
    }
    if (order.length !== nodes.length) {
      const stuck = nodes.filter((n) => !order.includes(n)).map((n) => n.name || n.opType);
      throw new Error(`graph has a cycle or missing producers around: ${stuck.slice(0, 5).join(', ')}`);
    }
    return order;
  }
}

/** A node's inputs, including values its subgraphs (If/Loop/Scan bodies) read from the enclosing scope. */
export function nodeInputs(node: NodeProto): string[] {
  const inputs = (node.input ?? []).filter((n) => n !== '');
  for (const attr of node.attribute ?? []) {
    for (const g of [attr.g, ...(attr.graphs ?? [])]) if (g) inputs.push(...outerScopeNames(g));
  }
  return inputs;
}

function outerScopeNames(graph: GraphProto): string[] {
  const local = new Set<string>([
    ...(graph.initializer ?? []).map((t) => t.name ?? ''),
    ...(graph.input ?? []).map((v) => v.name ?? ''),
  ]);
  for (const node of graph.node ?? []) for (const o of node.output ?? []) local.add(o);
  const outer = new Set<string>();
  for (const node of graph.node ?? []) for (const n of nodeInputs(node)) if (!local.has(n)) outer.add(n);
  for (const o of graph.output ?? []) if (o.name && !local.has(o.name)) outer.add(o.name);
  return [...outer];
}

/** Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope. */
export function subgraphOuterNames(node: NodeProto): string[] {
  const names: string[] = [];
  for (const attr of node.attribute ?? [])
    for (const g of [attr.g, ...(attr.graphs ?? [])]) if (g) names.push(...outerScopeNames(g));
  return [...new Set(names)];
}

/**
 * A copy of `graph` whose reads of enclosing-scope values are renamed by `rename` (nested subgraphs too); names
 * the graph defines itself (its inputs, initializers, node outputs) shadow outer ones and are left alone.
 */
export function renameOuterReads(graph: GraphProto, rename: ReadonlyMap<string, string>): GraphProto {
  const local = new Set<string>([
    ...(graph.initializer ?? []).map((t) => t.name ?? ''),
    ...(graph.input ?? []).map((v) => v.name ?? ''),
  ]);
  for (const node of graph.node ?? []) for (const o of node.output ?? []) local.add(o);
  const outer = new Map([...rename].filter(([from]) => !local.has(from)));
  if (outer.size === 0) return graph;
  return {
    ...graph,
    node: (graph.node ?? []).map((node) => ({
      ...node,
      input: (node.input ?? []).map((n) => outer.get(n) ?? n),
      attribute: node.attribute?.map((attr) => ({
        ...attr,
        ...(attr.g ? { g: renameOuterReads(attr.g, outer) } : {}),
        ...(attr.graphs ? { graphs: attr.graphs.map((g) => renameOuterReads(g, outer)) } : {}),
      })),
    })),
  };
}

/** Hands out names not yet used in a graph. */
export class NameAllocator {
  private readonly used: Set<string>;

  constructor(used: Iterable<string>) {
    this.used = new Set(used);
  }

  next(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

export function opsetVersion(model: ModelProto, domain = ''): number {
  const entry = (model.opsetImport ?? []).find(
    (o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'),
  );
  return entry?.version ?? 0;
}

/** Raises the default-domain opset to at least `version` (the ops the tools emit need recent opsets). */
export function requireOpset(model: ModelProto, version: number): void {
  const imports = model.opsetImport ?? (model.opsetImport = []);
  const entry = imports.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  if (!entry) imports.push({ domain: '', version });
  else if ((entry.version ?? 0) < version) entry.version = version;
}

export function attributeOf(node: NodeProto, name: string): AttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

export function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attributeOf(node, name);
  return a?.i ?? fallback;
}

export function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attributeOf(node, name);
  return a?.f ?? fallback;
}

export function intsAttribute(node: NodeProto, name: string): number[] | undefined {
  return attributeOf(node, name)?.ints;
}

/** Whether a node belongs to the default ONNX domain. */
export function isStandardDomain(node: NodeProto): boolean {
  return !node.domain || node.domain === 'ai.onnx';
}
