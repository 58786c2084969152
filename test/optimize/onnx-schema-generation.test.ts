import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  generateOnnxSchemaModule,
  ONNX_PROTO_PATH,
  ONNX_SCHEMA_MODULE_PATH,
} from '../../scripts/generate-onnx-schema.ts';
import { decodeModel, encodeModel } from '../../src/optimize/onnx/model-io.ts';
import { AttributeType, ModelProtoType, TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';

describe('the ONNX schema generated from the official onnx-ml.proto', () => {
  it('is what scripts/generate-onnx-schema.ts writes from the committed .proto', () => {
    expect(generateOnnxSchemaModule()).toBe(readFileSync(ONNX_SCHEMA_MODULE_PATH, 'utf8'));
  }, 30_000);

  it('comes from the official file, licence header kept (ONNX 1.17, IR version 10)', () => {
    const proto = readFileSync(ONNX_PROTO_PATH, 'utf8');
    expect(proto).toContain('// SPDX-License-Identifier: Apache-2.0');
    expect(proto).toContain('package onnx;');
    expect(proto).toMatch(/IR_VERSION = 0x000000000000000A;/);
  });

  it('gives the enum values of the specification', () => {
    expect(TensorDataType).toMatchObject({ FLOAT: 1, INT64: 7, FLOAT16: 10, BFLOAT16: 16, INT4: 22 });
    expect(AttributeType).toMatchObject({ FLOAT: 1, INTS: 7, GRAPH: 5, TYPE_PROTOS: 14 });
  });

  it('keeps fields of the full specification through a decode/encode round trip (opaque types, metadata, overloads)', () => {
    const model: ModelProto = {
      irVersion: 10,
      opsetImport: [{ domain: '', version: 21 }],
      graph: {
        name: 'g',
        node: [
          {
            opType: 'Identity',
            input: ['x'],
            output: ['y'],
            overload: 'v2',
            metadataProps: [{ key: 'origin', value: 'test' }],
          },
        ],
        input: [{ name: 'x', type: { opaqueType: { domain: 'com.example', name: 'blob' } } }],
        output: [{ name: 'y', type: { opaqueType: { domain: 'com.example', name: 'blob' } } }],
        metadataProps: [{ key: 'graph', value: 'meta' }],
      },
      functions: [{ name: 'f', domain: 'com.example', attributeProto: [{ name: 'alpha', type: 1, f: 0.5 }] }],
    };
    const bytes = encodeModel(model);
    const decoded = decodeModel(bytes);
    expect(decoded).toEqual(model);
    expect(ModelProtoType.verify(ModelProtoType.decode(bytes))).toBeNull();
    expect(Buffer.from(encodeModel(decoded)).equals(Buffer.from(bytes))).toBe(true);
  });
});
