/*
 * src/runtime/ort-adapter.ts uses onnxruntime-node's native binding, which is not part of the package's public API.
 * These checks state each thing the adapter relies on, so that an onnxruntime-node upgrade that changes one fails
 * here with the reason, instead of as a wrong answer or a crash while serving.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import * as bindingModule from 'onnxruntime-node/dist/binding.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import { elementTypeOfCode, loadNativeSession, type NativeOrtSession } from '../../src/runtime/ort-adapter.ts';
import type { ElementType } from '../../src/runtime/tensor.ts';

const UPGRADE = 'onnxruntime-node changed an internal that src/runtime/ort-adapter.ts relies on:';

/** One Identity per element type Caliper serves, each input [batch, 2] with a symbolic first dimension. */
const TYPES: [ElementType, number][] = [
  ['float32', TensorDataType.FLOAT],
  ['uint8', TensorDataType.UINT8],
  ['int8', TensorDataType.INT8],
  ['uint16', TensorDataType.UINT16],
  ['int16', TensorDataType.INT16],
  ['int32', TensorDataType.INT32],
  ['int64', TensorDataType.INT64],
  ['string', TensorDataType.STRING],
  ['bool', TensorDataType.BOOL],
  ['float16', TensorDataType.FLOAT16],
  ['float64', TensorDataType.DOUBLE],
  ['uint32', TensorDataType.UINT32],
  ['uint64', TensorDataType.UINT64],
];

let dir: string;
let modelPath: string;
let session: NativeOrtSession;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caliper-ort-adapter-'));
  modelPath = join(dir, 'identities.onnx');
  const g = new GraphBuilder('identities', 17);
  for (const [name, code] of TYPES) {
    g.input({ name: `in_${name}`, elemType: code, shape: ['batch', 2] });
    g.node('Identity', [`in_${name}`], {}, [`out_${name}`]);
    g.output({ name: `out_${name}`, elemType: code, shape: ['batch', 2] });
  }
  writeModelFile(modelPath, g.build());
  session = loadNativeSession(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the onnxruntime-node internals the ORT adapter relies on', () => {
  it('onnxruntime-node/dist/binding.js still exports binding.InferenceSession and initOrt', () => {
    expect(typeof bindingModule.binding?.InferenceSession, `${UPGRADE} binding.InferenceSession is gone`).toBe(
      'function',
    );
    expect(typeof bindingModule.initOrt, `${UPGRADE} initOrt() is gone`).toBe('function');
  });

  it('a native session describes inputs and outputs as ValueMetadata with the C API element type codes', () => {
    const inputs = session.inputMetadata;
    expect(Array.isArray(inputs), `${UPGRADE} inputMetadata is not an array`).toBe(true);
    expect(inputs.map((m) => m.name)).toEqual(TYPES.map(([name]) => `in_${name}`));
    for (const m of [...inputs, ...session.outputMetadata]) {
      expect(m, `${UPGRADE} ValueMetadata of ${m.name} changed shape`).toMatchObject({
        isTensor: true,
        shape: [-1, 2],
        symbolicDimensions: ['batch', ''],
      });
      const declared = TYPES.find(([name]) => m.name.endsWith(`_${name}`))![0];
      expect(elementTypeOfCode(m.type), `${UPGRADE} element type code ${m.type} of ${m.name}`).toBe(declared);
    }
  });

  it('run computes synchronously and answers ort.Tensor values for the fetched outputs only', () => {
    const feeds: Record<string, ort.Tensor> = {};
    feeds.in_float32 = new ort.Tensor('float32', new Float32Array([1, 2, 3, 4]), [2, 2]);
    feeds.in_int64 = new ort.Tensor('int64', new BigInt64Array([5n, 6n, 7n, 8n]), [2, 2]);
    feeds.in_string = new ort.Tensor('string', ['a', 'b', 'c', 'd'], [2, 2]);
    for (const [name] of TYPES) {
      if (feeds[`in_${name}`]) continue;
      feeds[`in_${name}`] = new ort.Tensor(name as ort.Tensor.Type, new (typedArrayOf(name))(4) as Uint8Array, [2, 2]);
    }
    const results = session.run(feeds, { out_float32: null, out_int64: null, out_string: null }, {});
    expect(results instanceof Promise, `${UPGRADE} run() became asynchronous`).toBe(false);
    expect(Object.keys(results).sort()).toEqual(['out_float32', 'out_int64', 'out_string']);
    expect(results.out_float32, `${UPGRADE} run() no longer answers ort.Tensor`).toBeInstanceOf(ort.Tensor);
    expect([...(results.out_float32!.data as Float32Array)]).toEqual([1, 2, 3, 4]);
    expect(results.out_float32!.dims).toEqual([2, 2]);
    expect([...(results.out_int64!.data as BigInt64Array)]).toEqual([5n, 6n, 7n, 8n]);
    expect(results.out_string!.data).toEqual(['a', 'b', 'c', 'd']);
  });

  it('loading a file that is not a model throws, and a disposed session refuses to run', () => {
    expect(() => loadNativeSession(join(dir, 'missing.onnx'), {})).toThrow();
    const other = loadNativeSession(modelPath, { intraOpNumThreads: 1 });
    other.dispose();
    const feeds = { in_float32: new ort.Tensor('float32', new Float32Array(2), [1, 2]) };
    expect(() => other.run(feeds, { out_float32: null }, {})).toThrow();
  });
});

function typedArrayOf(type: ElementType): new (size: number) => ort.Tensor.DataType {
  const arrays: Partial<Record<ElementType, new (size: number) => ort.Tensor.DataType>> = {
    uint8: Uint8Array,
    int8: Int8Array,
    uint16: Uint16Array,
    int16: Int16Array,
    int32: Int32Array,
    bool: Uint8Array,
    float16: Uint16Array,
    float64: Float64Array,
    uint32: Uint32Array,
    uint64: BigUint64Array,
  };
  return arrays[type]!;
}
