import type { NodeProto } from '../onnx/onnx-types.ts';

/** `--exclude`: node names or op types that stay in float. */
export class NodeFilter {
  private readonly excluded: Set<string>;

  constructor(exclude: readonly string[] = []) {
    this.excluded = new Set(exclude);
  }

  includes(node: NodeProto): boolean {
    return !this.excluded.has(node.name ?? '') && !this.excluded.has(node.opType ?? '');
  }

  /** Exclusions that match nothing in the model (likely typos). */
  unmatched(nodes: readonly NodeProto[]): string[] {
    const seen = new Set<string>();
    for (const n of nodes) {
      seen.add(n.name ?? '');
      seen.add(n.opType ?? '');
    }
    return [...this.excluded].filter((e) => !seen.has(e));
  }
}
