import { describeValue } from '../../config/config-reader.ts';
import { invalidInput } from '../../errors.ts';
import { textOfBytes } from '../../runtime/string-elements.ts';
import { elementCount, type TensorData, type TensorMap } from '../../runtime/tensor.ts';
import { rawTensorBytes, tensorFromRawBytes } from '../../protocol/binary-tensors.ts';
import { isV2Datatype, V2_DATATYPES, v2DatatypeOf, type V2Datatype } from '../../protocol/datatypes.ts';
import { valuesToTensorData } from '../../protocol/json-tensors.ts';
import type { GrpcTensor, InferTensorContents, ModelInferRequest } from '../../protocol/service-definition.ts';

/** Which InferTensorContents field carries each datatype (FP16 travels only as raw contents). */
const CONTENTS_FIELD: Record<V2Datatype, keyof InferTensorContents | undefined> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

function tensorHeader(tensor: GrpcTensor, index: number): { name: string; datatype: V2Datatype; shape: number[] } {
  if (typeof tensor.name !== 'string' || tensor.name === '')
    throw invalidInput(`inputs[${index}].name: expected a non-empty string, got ${describeValue(tensor.name)}`);
  if (!isV2Datatype(tensor.datatype))
    throw invalidInput(
      `inputs.${tensor.name}.datatype: expected one of ${Object.keys(V2_DATATYPES).join(', ')}, got ${describeValue(tensor.datatype)}`,
    );
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw invalidInput(
      `inputs.${tensor.name}.shape: expected non-negative dimensions, got [${tensor.shape.join(', ')}]`,
    );
  return { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape };
}

/** Decodes typed `contents` of one input, checking the field matches the datatype and the count matches the shape. */
function tensorFromContents(
  header: ReturnType<typeof tensorHeader>,
  contents: InferTensorContents | null | undefined,
): TensorData {
  const { name, datatype, shape } = header;
  const field = CONTENTS_FIELD[datatype];
  if (field === undefined)
    throw invalidInput(`inputs.${name}: ${datatype} has no typed contents field; send it in raw_input_contents`);
  const values = contents?.[field] ?? [];
  const count = elementCount(shape);
  if (values.length !== count) {
    throw invalidInput(
      `inputs.${name}.contents.${field}: shape [${shape.join(', ')}] needs ${count} values, got ${values.length}${values.length === 0 ? ' (no contents and no raw_input_contents)' : ''}`,
    );
  }
  if (datatype === 'BYTES')
    return {
      type: 'string',
      dims: shape,
      data: (values as Uint8Array[]).map((v, i) =>
        textOfBytes(`inputs.${name}.contents.bytes_contents: BYTES element ${i}`, v),
      ),
    };
  return valuesToTensorData(name, datatype, shape, values as readonly unknown[]);
}

/** The input tensors of a ModelInfer request: typed `contents`, or one raw_input_contents entry per input. */
export function grpcInputTensors(request: ModelInferRequest): TensorMap {
  if (request.inputs.length === 0) throw invalidInput('inputs: expected at least one input tensor');
  const raw = request.raw_input_contents ?? [];
  if (raw.length > 0 && raw.length !== request.inputs.length) {
    throw invalidInput(
      `raw_input_contents: expected one entry per input (${request.inputs.length}), got ${raw.length}`,
    );
  }
  const inputs: TensorMap = {};
  request.inputs.forEach((tensor, i) => {
    const header = tensorHeader(tensor, i);
    if (Object.hasOwn(inputs, header.name)) throw invalidInput(`inputs.${header.name}: the input is given twice`);
    if (raw.length > 0) {
      const contents = tensor.contents;
      if (contents && Object.values(contents).some((v) => Array.isArray(v) && v.length > 0)) {
        throw invalidInput(`inputs.${header.name}: has both contents and raw_input_contents (send one)`);
      }
      inputs[header.name] = tensorFromRawBytes(
        `raw_input_contents[${i}] (input ${header.name})`,
        header.datatype,
        header.shape,
        raw[i]!,
      );
    } else {
      inputs[header.name] = tensorFromContents(header, tensor.contents);
    }
  });
  return inputs;
}

/** Output tensors as Triton answers them: metadata in `outputs`, data in raw_output_contents. */
export function grpcOutputTensors(
  outputs: TensorMap,
  names: readonly string[],
): { outputs: GrpcTensor[]; raw_output_contents: Uint8Array[] } {
  const tensors: GrpcTensor[] = [];
  const raws: Uint8Array[] = [];
  for (const name of names) {
    const tensor = outputs[name]!;
    tensors.push({ name, datatype: v2DatatypeOf(tensor.type), shape: tensor.dims });
    raws.push(rawTensorBytes(tensor));
  }
  return { outputs: tensors, raw_output_contents: raws };
}
