import { invalidInput } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { elementCount, type TensorMap } from '../runtime/tensor.ts';

/** Tensor requests (v2 REST, gRPC) at the validate stage: the outputs asked for and the input tensors against the signature. */

/** Refuses an output the model does not serve, naming why (unknown, or not a tensor). */
export function checkOutputNames(version: ModelVersion, outputNames: readonly string[] | undefined): void {
  for (const name of outputNames ?? []) {
    if (!version.signature.outputs.some((o) => o.name === name)) {
      const unserved = version.signature.unserved?.find((o) => o.name === name);
      if (unserved)
        throw invalidInput(
          `outputs: output "${name}" is a ${unserved.type}, not a tensor, and is not served (model ${version.name} serves ${version.signature.outputs.map((o) => o.name).join(', ')})`,
        );
      throw invalidInput(
        `outputs: unknown output "${name}" (model ${version.name} has ${version.signature.outputs.map((o) => o.name).join(', ')})`,
      );
    }
  }
}

/** Checks raw input tensors against the model's signature: names, element types, ranks, static dimensions and batch agreement. */
export function checkInputTensors(version: ModelVersion, inputs: TensorMap): number {
  const signature = version.signature;
  for (const name of Object.keys(inputs)) {
    if (!signature.inputs.some((i) => i.name === name)) {
      throw invalidInput(
        `inputs: unknown input "${name}" (model ${version.name} takes ${signature.inputs.map((i) => i.name).join(', ')})`,
      );
    }
  }
  let rows: number | undefined;
  for (const expected of signature.inputs) {
    const tensor = inputs[expected.name];
    if (!tensor)
      throw invalidInput(`inputs: missing input "${expected.name}" (${expected.type} [${expected.shape.join(', ')}])`);
    if (tensor.type !== expected.type)
      throw invalidInput(`inputs.${expected.name}.datatype: expected ${expected.type}, got ${tensor.type}`);
    if (tensor.dims.length !== expected.shape.length) {
      throw invalidInput(
        `inputs.${expected.name}.shape: expected rank ${expected.shape.length} [${expected.shape.join(', ')}], got [${tensor.dims.join(', ')}]`,
      );
    }
    expected.shape.forEach((dim, i) => {
      if (dim !== -1 && tensor.dims[i] !== dim) {
        throw invalidInput(
          `inputs.${expected.name}.shape: dimension ${i} must be ${dim} ([${expected.shape.join(', ')}]), got [${tensor.dims.join(', ')}]`,
        );
      }
    });
    if (tensor.data.length !== elementCount(tensor.dims)) {
      throw invalidInput(
        `inputs.${expected.name}.data: shape [${tensor.dims.join(', ')}] needs ${elementCount(tensor.dims)} values, got ${tensor.data.length}`,
      );
    }
    if (version.batchable) {
      const batch = tensor.dims[0]!;
      if (rows !== undefined && batch !== rows)
        throw invalidInput(
          `inputs.${expected.name}.shape: batch dimension ${batch} differs from the other inputs' ${rows}`,
        );
      rows = batch;
    }
  }
  return rows ?? 1;
}
