import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import type { Mlp } from './mlp-trainer.ts';

/**
 * The trained MLP as ONNX (opset 17): Gemm + Relu per hidden layer, a final Gemm, then Sigmoid when
 * `head` is 'sigmoid' (the output is a probability) or raw logits for softmax models.
 */
export function exportMlp(mlp: Mlp, names: { input: string; output: string; graph: string }): ModelProto {
  const graph = new GraphBuilder(names.graph, 17);
  let current = graph.input({ name: names.input, elemType: TensorDataType.FLOAT, shape: ['batch', mlp.sizes[0]!] });
  mlp.layers.forEach((layer, i) => {
    const w = graph.initializer(tensorFromArray(`layer${i}.weight`, [layer.inputs, layer.outputs], layer.weights));
    const b = graph.initializer(tensorFromArray(`layer${i}.bias`, [layer.outputs], layer.bias));
    const last = i === mlp.layers.length - 1;
    const gemmOut = last && mlp.head === 'softmax' ? [names.output] : undefined;
    [current] = graph.node('Gemm', [current, w, b], {}, gemmOut) as [string];
    if (!last) [current] = graph.node('Relu', [current]) as [string];
  });
  if (mlp.head === 'sigmoid') graph.node('Sigmoid', [current], {}, [names.output]);
  graph.output({ name: names.output, elemType: TensorDataType.FLOAT, shape: ['batch', mlp.sizes.at(-1)!] });
  return graph.build();
}
