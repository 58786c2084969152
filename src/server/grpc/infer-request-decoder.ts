/*
 * ModelInferRequest decoded by hand from the wire, to the same plain objects the loader's toObject gives
 * (`keepCase`, `longs: Number`, `defaults: true`, `oneofs: true`), in a fraction of its time: raw_input_contents
 * stay views of the message, and no intermediate message instances are built. Field numbers follow
 * inference-service.proto (KServe v2 / Triton); unknown fields are skipped.
 */
import { FIXED64, LENGTH_DELIMITED, ProtoReader, ScalarKind, VARINT } from './proto-reader.ts';
import type {
  GrpcTensor,
  InferParameter,
  InferParameters,
  InferTensorContents,
  ModelInferRequest,
  RequestedOutput,
} from '../../protocol/service-definition.ts';

function parameter(r: ProtoReader): InferParameter {
  // A oneof: the last choice on the wire wins.
  let value: InferParameter = {};
  while (r.pos < r.end) {
    const key = r.key();
    switch (key >>> 3) {
      case 1:
        r.expect(key, VARINT);
        value = { bool_param: r.bool(), parameter_choice: 'bool_param' };
        break;
      case 2:
        r.expect(key, VARINT);
        value = { int64_param: r.int64(), parameter_choice: 'int64_param' };
        break;
      case 3:
        r.expect(key, LENGTH_DELIMITED);
        value = { string_param: r.string(), parameter_choice: 'string_param' };
        break;
      case 4:
        r.expect(key, FIXED64);
        value = { double_param: r.double(), parameter_choice: 'double_param' };
        break;
      case 5:
        r.expect(key, VARINT);
        value = { uint64_param: r.uint64(), parameter_choice: 'uint64_param' };
        break;
      default:
        r.skip(key);
    }
  }
  return value;
}

/** One map<string, InferParameter> entry, added to `into`. */
function parameterEntry(r: ProtoReader, into: InferParameters): void {
  let name = '';
  let value: InferParameter = {};
  const outer = r.enter();
  while (r.pos < r.end) {
    const key = r.key();
    if (key >>> 3 === 1) {
      r.expect(key, LENGTH_DELIMITED);
      name = r.string();
    } else if (key >>> 3 === 2) {
      r.expect(key, LENGTH_DELIMITED);
      const inner = r.enter();
      value = parameter(r);
      r.leave(inner);
    } else r.skip(key);
  }
  r.leave(outer);
  // Defined rather than assigned, so that a "__proto__" key is an entry like any other.
  Object.defineProperty(into, name, { value, enumerable: true, writable: true, configurable: true });
}

/** InferTensorContents, entered at its length prefix. */
function contents(r: ProtoReader): InferTensorContents {
  const outer = r.enter();
  const out = {
    bool_contents: [] as boolean[],
    int_contents: [] as number[],
    int64_contents: [] as (number | bigint)[],
    uint_contents: [] as number[],
    uint64_contents: [] as (number | bigint)[],
    fp32_contents: [] as number[],
    fp64_contents: [] as number[],
    bytes_contents: [] as Uint8Array[],
  };
  while (r.pos < r.end) {
    const key = r.key();
    switch (key >>> 3) {
      case 1:
        r.repeated(key, ScalarKind.Bool, out.bool_contents);
        break;
      case 2:
        r.repeated(key, ScalarKind.Int32, out.int_contents);
        break;
      case 3:
        r.repeated(key, ScalarKind.Int64, out.int64_contents);
        break;
      case 4:
        r.repeated(key, ScalarKind.Uint32, out.uint_contents);
        break;
      case 5:
        r.repeated(key, ScalarKind.Uint64, out.uint64_contents);
        break;
      case 6:
        r.repeated(key, ScalarKind.Float, out.fp32_contents);
        break;
      case 7:
        r.repeated(key, ScalarKind.Double, out.fp64_contents);
        break;
      case 8:
        r.expect(key, LENGTH_DELIMITED);
        out.bytes_contents.push(r.bytes());
        break;
      default:
        r.skip(key);
    }
  }
  r.leave(outer);
  return out;
}

function inputTensor(r: ProtoReader): GrpcTensor {
  const outer = r.enter();
  const tensor: GrpcTensor = { name: '', datatype: '', shape: [], parameters: {}, contents: null };
  while (r.pos < r.end) {
    const key = r.key();
    switch (key >>> 3) {
      case 1:
        r.expect(key, LENGTH_DELIMITED);
        tensor.name = r.string();
        break;
      case 2:
        r.expect(key, LENGTH_DELIMITED);
        tensor.datatype = r.string();
        break;
      case 3:
        r.repeated(key, ScalarKind.Int64, tensor.shape);
        break;
      case 4:
        r.expect(key, LENGTH_DELIMITED);
        parameterEntry(r, tensor.parameters!);
        break;
      case 5:
        r.expect(key, LENGTH_DELIMITED);
        tensor.contents = contents(r);
        break;
      default:
        r.skip(key);
    }
  }
  r.leave(outer);
  return tensor;
}

function requestedOutput(r: ProtoReader): RequestedOutput {
  const outer = r.enter();
  const output: RequestedOutput = { name: '', parameters: {} };
  while (r.pos < r.end) {
    const key = r.key();
    if (key >>> 3 === 1) {
      r.expect(key, LENGTH_DELIMITED);
      output.name = r.string();
    } else if (key >>> 3 === 2) {
      r.expect(key, LENGTH_DELIMITED);
      parameterEntry(r, output.parameters!);
    } else r.skip(key);
  }
  r.leave(outer);
  return output;
}

/** Decodes a ModelInferRequest; a malformed message throws a ProtoDecodeError that says what and where. */
export function decodeModelInferRequest(message: Uint8Array): ModelInferRequest {
  const buffer = Buffer.isBuffer(message)
    ? message
    : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const r = new ProtoReader(buffer);
  const request = {
    model_name: '',
    model_version: '',
    id: '',
    parameters: {} as InferParameters,
    inputs: [] as GrpcTensor[],
    outputs: [] as RequestedOutput[],
    raw_input_contents: [] as Uint8Array[],
  };
  while (r.pos < r.end) {
    const key = r.key();
    switch (key >>> 3) {
      case 1:
        r.expect(key, LENGTH_DELIMITED);
        request.model_name = r.string();
        break;
      case 2:
        r.expect(key, LENGTH_DELIMITED);
        request.model_version = r.string();
        break;
      case 3:
        r.expect(key, LENGTH_DELIMITED);
        request.id = r.string();
        break;
      case 4:
        r.expect(key, LENGTH_DELIMITED);
        parameterEntry(r, request.parameters);
        break;
      case 5:
        r.expect(key, LENGTH_DELIMITED);
        request.inputs.push(inputTensor(r));
        break;
      case 6:
        r.expect(key, LENGTH_DELIMITED);
        request.outputs.push(requestedOutput(r));
        break;
      case 7:
        r.expect(key, LENGTH_DELIMITED);
        request.raw_input_contents.push(r.bytes());
        break;
      default:
        r.skip(key);
    }
  }
  return request;
}
