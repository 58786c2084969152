/**
 * Writes examples/iris-classifier/1/model.onnx: a scikit-learn-style classifier as skl2onnx exports one.
 * A multinomial logistic regression over the four Iris measurements (coefficients close to what scikit-learn's
 * LogisticRegression fits on the Iris data) as ai.onnx.ml LinearClassifier, with a ZipMap output
 * (seq(map(string,tensor(float))), which Caliper lists as not served) beside the label and probability tensors.
 *
 *   node --import tsx examples/iris-classifier/build.ts
 */
import { join } from 'node:path';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';

const ML = 'ai.onnx.ml';
const SPECIES = ['setosa', 'versicolor', 'virginica'];
const COEFFICIENTS = [
  [-0.42, 0.97, -2.52, -1.08],
  [0.53, -0.32, -0.21, -0.94],
  [-0.11, -0.65, 2.73, 2.02],
];
const INTERCEPTS = [9.85, 2.24, -12.09];

const g = new GraphBuilder('iris_logistic_regression', 17);
g.input({ name: 'float_input', elemType: TensorDataType.FLOAT, shape: ['N', 4] });
g.node(
  'LinearClassifier',
  ['float_input'],
  {
    coefficients: { floats: COEFFICIENTS.flat() },
    intercepts: { floats: INTERCEPTS },
    classlabels_strings: SPECIES,
    multi_class: 1,
    post_transform: 'SOFTMAX',
  },
  ['output_label', 'probabilities'],
  ML,
);
g.node('ZipMap', ['probabilities'], { classlabels_strings: SPECIES }, ['output_probability'], ML);
g.output({ name: 'output_label', elemType: TensorDataType.STRING, shape: ['N'] });
g.output({ name: 'probabilities', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
const model = g.build('skl2onnx-style');
model.opsetImport!.push({ domain: ML, version: 3 });
model.graph!.output!.push({
  name: 'output_probability',
  type: {
    sequenceType: {
      elemType: {
        mapType: { keyType: TensorDataType.STRING, valueType: { tensorType: { elemType: TensorDataType.FLOAT } } },
      },
    },
  },
});
// skl2onnx leaves the batch dimension without a value or a name: Caliper proves it from the graph.
for (const value of [...model.graph!.input!, ...model.graph!.output!]) {
  const dims = value.type?.tensorType?.shape?.dim;
  if (dims) dims[0] = {};
}
const target = join(import.meta.dirname, '1', 'model.onnx');
writeModelFile(target, model);
console.log(`wrote ${target}`);
