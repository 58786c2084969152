import { describe, expect, it } from 'vitest';
import { decodeModelInferRequest } from '../../src/server/grpc/infer-request-decoder.ts';
import { inferResponseSerializer, streamResponseSerializer } from '../../src/server/grpc/infer-response-encoder.ts';
import { ProtoDecodeError } from '../../src/server/grpc/proto-reader.ts';
import {
  inferenceServiceDefinition,
  strictRequestDecoders,
  type ModelInferRequest,
  type ModelInferResponse,
  type ModelStreamInferResponse,
} from '../../src/protocol/service-definition.ts';

/** The loader's (protobufjs) codecs for the same .proto: the reference the hand codec must agree with. */
const definition = inferenceServiceDefinition();
const loaderEncodeRequest = (request: object): Buffer => definition.ModelInfer!.requestSerialize(request);
const loaderDecodeRequest = strictRequestDecoders().ModelInfer!;
const loaderEncodeResponse = definition.ModelInfer!.responseSerialize as (m: ModelInferResponse) => Buffer;
const loaderDecodeResponse = definition.ModelInfer!.responseDeserialize as (b: Buffer) => unknown;
const loaderEncodeStream = definition.ModelStreamInfer!.responseSerialize as (m: ModelStreamInferResponse) => Buffer;
const loaderDecodeStream = definition.ModelStreamInfer!.responseDeserialize as (b: Buffer) => unknown;
const encodeResponse = inferResponseSerializer(loaderEncodeResponse);
const encodeStream = streamResponseSerializer(loaderEncodeStream);

function fp32(values: number[]): Buffer {
  return Buffer.from(new Float32Array(values).buffer);
}

/** Hand-built wire bytes: a key, then a varint or raw bytes. */
function key(field: number, wireType: number): number[] {
  return varint(field * 8 + wireType);
}
function varint(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}
function delimited(field: number, bytes: number[] | Buffer): number[] {
  return [...key(field, 2), ...varint(bytes.length), ...bytes];
}

const requests: Record<string, object> = {
  empty: {},
  raw: {
    model_name: 'fashion_mnist',
    model_version: '3',
    id: 'req-1',
    inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 4] }],
    raw_input_contents: [fp32([0, 0.5, 1, 255])],
  },
  'typed contents of every kind': {
    model_name: 'm',
    inputs: [
      { name: 'b', datatype: 'BOOL', shape: [3], contents: { bool_contents: [true, false, true] } },
      { name: 'i', datatype: 'INT32', shape: [3], contents: { int_contents: [-1, 0, 2147483647] } },
      { name: 'l', datatype: 'INT64', shape: [4], contents: { int64_contents: [-1, -(2 ** 40), 2 ** 52, 0] } },
      { name: 'u', datatype: 'UINT32', shape: [2], contents: { uint_contents: [0, 4294967295] } },
      { name: 'ul', datatype: 'UINT64', shape: [2], contents: { uint64_contents: [1, 2 ** 53 - 1] } },
      { name: 'f', datatype: 'FP32', shape: [3], contents: { fp32_contents: [1.5, -0.25, 3.4028234663852886e38] } },
      { name: 'd', datatype: 'FP64', shape: [2], contents: { fp64_contents: [Math.PI, -1e-300] } },
      {
        name: 's',
        datatype: 'BYTES',
        shape: [2],
        contents: { bytes_contents: [Buffer.from('héllo'), Buffer.alloc(0)] },
      },
    ],
  },
  'parameters of every choice, on the request, inputs and outputs': {
    model_name: 'm',
    id: 'ünïcode ✓',
    parameters: {
      timeout: { int64_param: -5 },
      priority: { uint64_param: 2 ** 40 },
      flag: { bool_param: true },
      name: { string_param: 'x' },
      ratio: { double_param: 0.125 },
      none: {},
    },
    inputs: [{ name: 'a', datatype: 'FP32', shape: [-1, 2], parameters: { binary_data_size: { int64_param: 8 } } }],
    outputs: [{ name: 'o1' }, { name: 'o2', parameters: { binary_data: { bool_param: false } } }],
  },
  'several inputs and raw entries': {
    model_name: 'm',
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 2] },
      { name: 'b', datatype: 'INT64', shape: [1] },
    ],
    raw_input_contents: [fp32([1, 2]), Buffer.alloc(8, 7)],
  },
};

describe('ModelInferRequest hand decoder', () => {
  for (const [name, request] of Object.entries(requests)) {
    it(`decodes as the loader does: ${name}`, () => {
      const bytes = loaderEncodeRequest(request);
      expect(decodeModelInferRequest(bytes)).toEqual(loaderDecodeRequest(bytes));
    });
  }

  it('reads raw_input_contents as views of the message, and accepts a plain Uint8Array', () => {
    const bytes = loaderEncodeRequest(requests.raw!);
    const decoded = decodeModelInferRequest(bytes);
    expect(decoded.raw_input_contents![0]!.buffer).toBe(bytes.buffer);
    expect(decodeModelInferRequest(new Uint8Array(bytes))).toEqual(decoded);
  });

  it('reads unpacked repeated scalars and skips unknown fields of every wire type', () => {
    const tensor = [
      ...delimited(1, Buffer.from('x')),
      ...delimited(2, Buffer.from('FP32')),
      ...key(3, 0),
      ...varint(2),
      ...key(3, 0),
      ...varint(3), // unpacked shape
      ...delimited(5, [...key(6, 5), 0, 0, 0x80, 0x3f, ...key(6, 5), 0, 0, 0, 0x40]), // unpacked fp32 1, 2
      ...key(15, 0),
      ...varint(300),
    ];
    const bytes = Buffer.from([
      ...delimited(1, Buffer.from('m')),
      ...key(20, 0),
      ...varint(99),
      ...key(21, 1),
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      ...key(22, 5),
      1,
      2,
      3,
      4,
      ...delimited(23, Buffer.from('ignored')),
      ...key(24, 3),
      ...key(1, 0),
      ...varint(5),
      ...key(24, 4), // a group
      ...delimited(5, tensor),
    ]);
    const decoded = decodeModelInferRequest(bytes);
    expect(decoded.model_name).toBe('m');
    expect(decoded.inputs).toEqual([
      {
        name: 'x',
        datatype: 'FP32',
        shape: [2, 3],
        parameters: {},
        contents: expect.objectContaining({ fp32_contents: [1, 2] }),
      },
    ]);
    expect(decoded).toEqual(loaderDecodeRequest(bytes));
  });

  it('keeps a "__proto__" parameter name as an ordinary entry', () => {
    const entry = [...delimited(1, Buffer.from('__proto__')), ...delimited(2, [...key(1, 0), 1])];
    const decoded = decodeModelInferRequest(Buffer.from(delimited(4, entry)));
    expect(Object.keys(decoded.parameters!)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(decoded.parameters)).toBe(Object.prototype);
  });

  it('rejects malformed messages with a ProtoDecodeError that says what and where', () => {
    const bad: [string, number[], RegExp][] = [
      ['truncated string', [...key(1, 2), 10, 0x61], /truncated value: 10 bytes needed, 1 left/],
      ['truncated varint', [...key(5, 2), 0x80], /truncated varint/],
      ['wrong wire type', [...key(1, 0), 1], /field 1 has wire type 0, expected 2/],
      ['field number 0', [0x02, 0x00], /field number 0/],
      ['invalid wire type', [...key(9, 7)], /invalid wire type 7/],
      [
        'embedded length past the message',
        [...delimited(5, [...delimited(1, Buffer.from('x'))]).slice(0, -1)],
        /truncated value/,
      ],
      [
        'inner field past its message',
        [...key(5, 2), 2, ...key(1, 2), 5, 0x61, 0x61, 0x61, 0x61, 0x61],
        /truncated value: 5 bytes needed, 0 left/,
      ],
      [
        'float run not a multiple of 4',
        [...delimited(5, delimited(5, delimited(6, [0, 0, 0])))],
        /truncated value: 4 bytes needed, 3 left/,
      ],
      ['unterminated group', [...key(30, 3), ...key(1, 0), 1], /unterminated group/],
      ['varint too long', [...key(20, 0), ...Array(11).fill(0xff)], /varint longer than 10 bytes/],
    ];
    for (const [what, bytes, message] of bad) {
      const error = (() => {
        try {
          decodeModelInferRequest(Buffer.from(bytes));
        } catch (e) {
          return e;
        }
        throw new Error(`${what}: accepted`);
      })();
      expect(error, what).toBeInstanceOf(ProtoDecodeError);
      expect((error as Error).message, what).toMatch(message);
    }
  });

  it('never throws anything but a ProtoDecodeError on truncated or corrupted input', () => {
    let state = 12345;
    const random = (): number => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 32;
    };
    const valid = loaderEncodeRequest(requests['parameters of every choice, on the request, inputs and outputs']!);
    const samples: Buffer[] = [];
    for (let cut = 0; cut < valid.byteLength; cut++) samples.push(valid.subarray(0, cut));
    for (let i = 0; i < 2000; i++) {
      const copy = Buffer.from(valid);
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--)
        copy[Math.floor(random() * copy.byteLength)] = Math.floor(random() * 256);
      samples.push(copy);
    }
    for (let i = 0; i < 500; i++)
      samples.push(Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256))));
    for (const sample of samples) {
      try {
        decodeModelInferRequest(sample);
      } catch (error) {
        expect(error).toBeInstanceOf(ProtoDecodeError);
      }
    }
  });
});

describe('ModelInferResponse hand encoder', () => {
  const response = (overrides: Partial<ModelInferResponse> = {}): ModelInferResponse => ({
    model_name: 'fraud_detector',
    model_version: '2',
    id: 'req-1',
    outputs: [{ name: 'fraud_probability', datatype: 'FP32', shape: [2, 1] }],
    raw_output_contents: [fp32([0.25, 0.75])],
    ...overrides,
  });

  const cases: Record<string, ModelInferResponse> = {
    typical: response(),
    'empty id and version': response({ id: '', model_version: '' }),
    'several outputs, negative and large dimensions, unicode names': response({
      model_name: 'modèle ✓',
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [32, 10] },
        { name: 'ids', datatype: 'INT64', shape: [-1, 2 ** 40, 0] },
        { name: 'scalar', datatype: 'FP64', shape: [] },
      ],
      raw_output_contents: [Buffer.alloc(1280, 1), Buffer.alloc(0), Buffer.alloc(200, 2)],
    }),
    'no outputs': response({ outputs: [], raw_output_contents: [] }),
    'parameters and typed contents (through the loader)': response({
      parameters: { sequence_end: { bool_param: true } },
      outputs: [
        {
          name: 'o',
          datatype: 'FP32',
          shape: [2],
          parameters: { binary_data_size: { int64_param: 8 } },
          contents: { fp32_contents: [1, 2] },
        },
      ],
      raw_output_contents: [],
    }),
  };

  for (const [name, message] of Object.entries(cases)) {
    it(`encodes what the loader decodes back to the same message: ${name}`, () => {
      expect(loaderDecodeResponse(encodeResponse(message))).toEqual(
        loaderDecodeResponse(loaderEncodeResponse(message)),
      );
    });
  }

  it('is byte-for-byte the canonical encoding the loader gives once empty strings are left out', () => {
    const message = response();
    expect(encodeResponse(message)).toEqual(loaderEncodeResponse(message));
  });

  it('encodes stream answers: results, errors, and errors with an empty response', () => {
    const answers: ModelStreamInferResponse[] = [
      { error_message: '', infer_response: response() },
      { error_message: 'inputs.features: expected 10 values' },
      {
        error_message: 'model "x" is loading',
        infer_response: { model_name: 'x', model_version: '', id: 'a', outputs: [], raw_output_contents: [] },
      },
      { error_message: '', infer_response: cases['parameters and typed contents (through the loader)']! },
    ];
    for (const answer of answers) {
      expect(loaderDecodeStream(encodeStream(answer))).toEqual(loaderDecodeStream(loaderEncodeStream(answer)));
    }
  });

  it('round-trips through the hand decoder as a request would', () => {
    const request: ModelInferRequest = {
      model_name: 'm',
      id: '7',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2] }],
      raw_input_contents: [fp32([3, 4])],
    };
    const decoded = decodeModelInferRequest(loaderEncodeRequest(request));
    expect(Buffer.from(decoded.raw_input_contents![0]!)).toEqual(fp32([3, 4]));
  });
});
