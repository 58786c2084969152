import { TensorProtoDataType as TensorDataType } from '../optimize/onnx/onnx-ml.generated.ts';
import type { ModelProto, TypeProto } from '../optimize/onnx/onnx-types.ts';
import type { ModelSignature, UnservedOutput } from './model-signature.ts';

const ELEMENT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(TensorDataType).map(([name, code]) => [code as number, name.toLowerCase()]),
);

/** An ONNX value type in ONNX's own spelling: tensor(float), seq(map(int64,tensor(float))), optional(...). */
export function describeOnnxType(type: TypeProto | undefined): string {
  if (!type) return 'unknown';
  if (type.tensorType) return `tensor(${ELEMENT_NAMES[type.tensorType.elemType ?? 0] ?? 'undefined'})`;
  if (type.sequenceType) return `seq(${describeOnnxType(type.sequenceType.elemType)})`;
  if (type.mapType)
    return `map(${ELEMENT_NAMES[type.mapType.keyType ?? 0] ?? 'undefined'},${describeOnnxType(type.mapType.valueType)})`;
  if (type.optionalType) return `optional(${describeOnnxType(type.optionalType.elemType)})`;
  return 'unknown';
}

/**
 * The signature's non-tensor outputs with their types read from the model file (`readModel`, called only when there
 * are such outputs); left as they are if it cannot be read.
 */
export async function describeUnservedOutputs(
  signature: ModelSignature,
  readModel: () => Promise<ModelProto>,
): Promise<UnservedOutput[]> {
  const unserved = signature.unserved ?? [];
  if (unserved.length === 0) return unserved;
  try {
    const outputs = (await readModel()).graph?.output ?? [];
    return unserved.map((o) => ({
      name: o.name,
      type: describeOnnxType(outputs.find((v) => v.name === o.name)?.type),
    }));
  } catch {
    return unserved;
  }
}
