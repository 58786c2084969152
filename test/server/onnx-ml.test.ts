import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto, ValueInfoProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const ML = 'ai.onnx.ml';
const { FLOAT, INT64, STRING } = TensorDataType;

/** As skl2onnx writes them: ai.onnx.ml imported, and the batch dimension left without a value or a name. */
function sklearnStyle(g: GraphBuilder, extraOutputs: ValueInfoProto[] = []): ModelProto {
  const model = g.build('skl2onnx');
  model.opsetImport!.push({ domain: ML, version: 3 });
  const graph = model.graph!;
  graph.output!.push(...extraOutputs);
  for (const value of [...graph.input!, ...graph.output!]) {
    const dims = value.type?.tensorType?.shape?.dim;
    if (dims && dims.length > 0) dims[0] = {};
  }
  return model;
}

const zipMapOutput = (name: string): ValueInfoProto => ({
  name,
  type: { sequenceType: { elemType: { mapType: { keyType: INT64, valueType: { tensorType: { elemType: FLOAT } } } } } },
});

/** A logistic regression over 2 features and 3 classes, exported with its ZipMap (scikit-learn's default). */
function logisticRegression(): ModelProto {
  const g = new GraphBuilder('logreg', 17);
  g.input({ name: 'float_input', elemType: FLOAT, shape: ['N', 2] });
  g.node(
    'LinearClassifier',
    ['float_input'],
    {
      coefficients: { floats: [1, 0, 0, 1, -1, -1] },
      intercepts: { floats: [0, 0, 0.5] },
      classlabels_ints: [0, 1, 2],
      post_transform: 'SOFTMAX',
    },
    ['label', 'probabilities'],
    ML,
  );
  g.node('ZipMap', ['probabilities'], { classlabels_int64s: [0, 1, 2] }, ['output_probability'], ML);
  g.output({ name: 'label', elemType: INT64, shape: ['N'] });
  return sklearnStyle(g, [zipMapOutput('output_probability')]);
}

/** One tree over three classes: feature 0 <= 0.5 → class 10, else class 30; and a regressor over the same split (1.5 or -2.5). */
function trees(): ModelProto {
  const g = new GraphBuilder('trees', 17);
  g.input({ name: 'X', elemType: FLOAT, shape: ['N', 2] });
  const tree = {
    nodes_treeids: [0, 0, 0],
    nodes_nodeids: [0, 1, 2],
    nodes_featureids: [0, 0, 0],
    nodes_values: { floats: [0.5, 0, 0] },
    nodes_modes: ['BRANCH_LEQ', 'LEAF', 'LEAF'],
    nodes_truenodeids: [1, 0, 0],
    nodes_falsenodeids: [2, 0, 0],
  };
  g.node(
    'TreeEnsembleClassifier',
    ['X'],
    {
      ...tree,
      class_treeids: [0, 0],
      class_nodeids: [1, 2],
      class_ids: [0, 2],
      class_weights: { floats: [1, 1] },
      classlabels_int64s: [10, 20, 30],
    },
    ['class', 'class_scores'],
    ML,
  );
  g.node(
    'TreeEnsembleRegressor',
    ['X'],
    {
      ...tree,
      n_targets: 1,
      target_treeids: [0, 0],
      target_nodeids: [1, 2],
      target_ids: [0, 0],
      target_weights: { floats: [1.5, -2.5] },
    },
    ['value'],
    ML,
  );
  g.node('LinearRegressor', ['X'], { coefficients: { floats: [2, 3] }, intercepts: { floats: [1] } }, ['linear'], ML);
  g.output({ name: 'class', elemType: INT64, shape: ['N'] });
  g.output({ name: 'class_scores', elemType: FLOAT, shape: ['N', 3] });
  g.output({ name: 'value', elemType: FLOAT, shape: ['N', 1] });
  g.output({ name: 'linear', elemType: FLOAT, shape: ['N', 1] });
  return sklearnStyle(g);
}

/** Scaler → Normalizer (L2), OneHotEncoder over an int64 code, LabelEncoder from strings to ids. */
function transforms(): ModelProto {
  const g = new GraphBuilder('transforms', 17);
  g.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
  g.input({ name: 'code', elemType: INT64, shape: ['N', 1] });
  g.input({ name: 'word', elemType: STRING, shape: ['N'] });
  const [scaled] = g.node('Scaler', ['x'], { offset: { floats: [1, 1] }, scale: { floats: [2, 0.5] } }, undefined, ML);
  g.node('Normalizer', [scaled!], { norm: 'L2' }, ['unit'], ML);
  g.node('OneHotEncoder', ['code'], { cats_int64s: [1, 2, 3], zeros: 1 }, ['onehot'], ML);
  g.node(
    'LabelEncoder',
    ['word'],
    { keys_strings: ['cat', 'dog'], values_int64s: [7, 9], default_int64: -1 },
    ['id'],
    ML,
  );
  g.output({ name: 'unit', elemType: FLOAT, shape: ['N', 2] });
  g.output({ name: 'onehot', elemType: FLOAT, shape: ['N', 1, 3] });
  g.output({ name: 'id', elemType: INT64, shape: ['N'] });
  return sklearnStyle(g);
}

const instances = { count: 1, kind: 'in_thread', intra_op_threads: 1 };
const pairInput = { x: { type: 'array', items: 'number', length: 2 } };

let repo: TempModelRepository;
let server: RunningServer;
const failures: string[] = [];

beforeAll(async () => {
  repo = new TempModelRepository();
  repo.add(
    'logreg',
    {
      name: 'logreg',
      inputs: pairInput,
      preprocess: { tensor: 'float_input', columns: [{ identity: 'x' }] },
      postprocess: { label: { output: 'label' } },
      batching: { max_batch_size: 8, max_queue_delay_us: 100 },
      instances,
    },
    logisticRegression(),
  );
  repo.add(
    'logreg_zipmap',
    {
      name: 'logreg_zipmap',
      inputs: pairInput,
      preprocess: { tensor: 'float_input', columns: [{ identity: 'x' }] },
      postprocess: { probability: { output: 'output_probability' } },
      instances,
    },
    logisticRegression(),
  );
  repo.add(
    'trees',
    {
      name: 'trees',
      inputs: pairInput,
      preprocess: { tensor: 'X', columns: [{ identity: 'x' }] },
      postprocess: { class: { output: 'class' }, value: { output: 'value' }, linear: { output: 'linear' } },
      instances,
    },
    trees(),
  );
  repo.add(
    'transforms',
    {
      name: 'transforms',
      inputs: { ...pairInput, code: { type: 'integer' }, word: { type: 'string' } },
      preprocess: {
        tensors: [
          { tensor: 'x', columns: [{ identity: 'x' }] },
          { tensor: 'code', dtype: 'int64', columns: [{ identity: 'code' }] },
          { tensor: 'word', dtype: 'string', columns: [{ identity: 'word' }], shape: [] },
        ],
      },
      postprocess: { unit: { output: 'unit' }, onehot: { output: 'onehot' }, id: { output: 'id' } },
      instances,
    },
    transforms(),
  );
  const logger = pino(
    { level: 'error' },
    {
      write: (line: string) => {
        failures.push(line);
      },
    },
  );
  server = await startServing({ paths: [repo.dir, 'examples/iris-classifier'], port: 0, logger });
});

afterAll(async () => {
  await server?.close();
  repo?.remove();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

const softmax = (z: number[]): number[] => z.map((v) => Math.exp(v) / z.reduce((s, w) => s + Math.exp(w), 0));

describe('scikit-learn style models (ONNX-ML operators, ZipMap outputs)', () => {
  it('serves a classifier with a ZipMap output: tensor outputs only, the ZipMap listed as not served', async () => {
    const meta = (await (await fetch(`${server.url}/v2/models/logreg`)).json()) as Record<string, unknown>;
    expect(meta.outputs).toEqual([{ name: 'label', datatype: 'INT64', shape: [-1] }]);
    expect(meta.outputs_not_served).toEqual([{ name: 'output_probability', type: 'seq(map(int64,tensor(float)))' }]);
    expect(meta.batchable).toBe(true);
    const answers = await Promise.all(
      [
        [3, 0],
        [0, 3],
        [-3, -3],
      ].map((x) => post('/models/logreg/predict', { x })),
    );
    expect(answers.map((a) => a.json.label)).toEqual([0, 1, 2]);
    const v2 = await post('/v2/models/logreg/infer', {
      inputs: [{ name: 'float_input', datatype: 'FP32', shape: [2, 2], data: [3, 0, 0, 3] }],
    });
    expect(v2.json.outputs).toEqual([{ name: 'label', datatype: 'INT64', shape: [2], data: [0, 1] }]);
    const asked = await post('/v2/models/logreg/infer', {
      inputs: [{ name: 'float_input', datatype: 'FP32', shape: [1, 2], data: [3, 0] }],
      outputs: [{ name: 'output_probability' }],
    });
    expect(asked.status).toBe(400);
    expect(asked.json.error).toContain(
      'output "output_probability" is a seq(map(int64,tensor(float))), not a tensor, and is not served',
    );
  });

  it('refuses at load a model.yaml that names a non-tensor output, with its name and type', () => {
    expect(server.repository.has('logreg_zipmap')).toBe(false);
    const failure = server.repository.failures.find((f) => f.name === 'logreg_zipmap');
    expect(failure?.reason).toContain(
      'postprocess.probability.output: output "output_probability" is a seq(map(int64,tensor(float))), not a tensor',
    );
    expect(failure?.reason).toContain('use one of the tensor outputs label');
  });

  it('serves tree ensembles and linear regressors end to end', async () => {
    const answers = await Promise.all(
      [
        [0.2, 5],
        [0.9, 1],
      ].map((x) => post('/models/trees/predict', { x })),
    );
    expect(answers.map((a) => [a.json.class, a.json.value, a.json.linear])).toEqual([
      [10, 1.5, Math.fround(1 + 0.4 + 15)],
      [30, -2.5, Math.fround(1 + 1.8 + 3)],
    ]);
    const v2 = await post('/v2/models/trees/infer', {
      inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 2], data: [0.2, 5, 0.9, 1] }],
      outputs: [{ name: 'class_scores' }],
    });
    expect(v2.json.outputs).toEqual([
      { name: 'class_scores', datatype: 'FP32', shape: [2, 3], data: [1, 0, 0, 0, 0, 1] },
    ]);
  });

  it('serves Scaler, Normalizer, OneHotEncoder and LabelEncoder end to end', async () => {
    const answer = await post('/models/transforms/predict', {
      instances: [
        { x: [1, 3], code: 2, word: 'dog' },
        { x: [-1, 1], code: 5, word: 'bird' },
      ],
    });
    expect(answer.status).toBe(200);
    const [a, b] = answer.json.predictions as Record<string, number[] | number>[];
    // Scaler: (x - offset) * scale = [0, 1] → unit length [0, 1]; [-2, 0] * [2, 0.5] = [-4, 0] → [-1, 0].
    expect(a).toMatchObject({ unit: [0, 1], onehot: [0, 1, 0], id: 9 });
    expect(b).toMatchObject({ unit: [-1, 0], onehot: [0, 0, 0], id: -1 });
  });

  it('computes the classifier probabilities it zips (checked through the label)', () => {
    // Scores for [3, 0]: [3, 0, -2.5] → softmax ranks class 0 first, as the served label says.
    const p = softmax([3, 0, -2.5]);
    expect(p.indexOf(Math.max(...p))).toBe(0);
    expect(failures.some((f) => f.includes('logreg_zipmap'))).toBe(true);
  });

  it('serves the iris-classifier example (LinearClassifier with string labels and a ZipMap) through /predict', async () => {
    const meta = (await (await fetch(`${server.url}/v2/models/iris_classifier`)).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      batchable: true,
      outputs_not_served: [{ name: 'output_probability', type: 'seq(map(string,tensor(float)))' }],
    });
    const flowers = [
      [5.1, 3.5, 1.4, 0.2],
      [5.9, 3.0, 4.2, 1.5],
      [6.7, 3.0, 5.2, 2.3],
    ].map(([sl, sw, pl, pw]) => ({ sepal_length: sl, sepal_width: sw, petal_length: pl, petal_width: pw }));
    const answer = await post('/models/iris_classifier/predict', { instances: flowers });
    const predictions = answer.json.predictions as { species: string; classes: { label: string; score: number }[] }[];
    expect(predictions.map((p) => p.species)).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(predictions.map((p) => p.classes[0]!.label)).toEqual(['setosa', 'versicolor', 'virginica']);
    for (const p of predictions) expect(p.classes.reduce((sum, c) => sum + c.score, 0)).toBeCloseTo(1, 5);
  });
});
