import type { ModelConfig, TensorDtype } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import type { Preprocessor } from './preprocess.ts';

/**
 * Checks model.yaml against the inputs and outputs read from the ONNX file, so that a mismatch is a
 * load error naming the field, never a failure at request time.
 */
export function checkConfigAgainstSignature(
  config: ModelConfig,
  signature: ModelSignature,
  preprocessor: Preprocessor,
  modelPath: string,
): void {
  const fail: (field: string, message: string) => never = (field, message) => {
    throw new CaliperError('CALIPER_MODEL_LOAD_FAILED', `${config.file}: ${field}: ${message} (model ${modelPath})`);
  };
  const inputNames = signature.inputs.map((i) => `${i.name} (${i.type} [${i.shape.join(', ')}])`).join(', ');
  for (const builder of preprocessor.builders) {
    const { spec, rowShape } = builder;
    const input = signature.inputs.find((i) => i.name === spec.name);
    if (!input)
      fail(
        `preprocess tensor ${spec.name}`,
        `the model has no input named "${spec.name}"; its inputs are ${inputNames}`,
      );
    if (input.type !== (spec.dtype satisfies TensorDtype))
      fail(`preprocess tensor ${spec.name}.dtype`, `the model expects ${input.type}, model.yaml builds ${spec.dtype}`);
    const expectedRank = rowShape.length + 1;
    if (input.shape.length !== expectedRank) {
      fail(
        `preprocess tensor ${spec.name}`,
        `the model input has rank ${input.shape.length} [${input.shape.join(', ')}], model.yaml builds rank ${expectedRank} [N, ${rowShape.join(', ')}]`,
      );
    }
    rowShape.forEach((dim, i) => {
      const modelDim = input.shape[i + 1]!;
      if (modelDim !== -1 && dim === -1) {
        fail(
          `preprocess tensor ${spec.name}`,
          `dimension ${i + 1} is ${modelDim} in the model but model.yaml pads each batch to its longest row: set pad_to: ${modelDim}`,
        );
      }
      if (modelDim !== -1 && modelDim !== dim) {
        fail(
          `preprocess tensor ${spec.name}`,
          `dimension ${i + 1} is ${modelDim} in the model but model.yaml builds ${dim} columns`,
        );
      }
    });
    const maskName = spec.padding?.mask;
    if (maskName !== undefined) {
      const mask = signature.inputs.find((i) => i.name === maskName);
      const where = `preprocess tensor ${spec.name}.attention_mask`;
      if (!mask) fail(where, `the model has no input named "${maskName}"; its inputs are ${inputNames}`);
      if (mask.type !== spec.dtype)
        fail(
          where,
          `the model expects ${mask.type} for ${maskName}, model.yaml builds the mask as ${spec.dtype} (the dtype of ${spec.name})`,
        );
      if (mask.shape.length !== 2)
        fail(
          where,
          `the model input ${maskName} has rank ${mask.shape.length} [${mask.shape.join(', ')}]; a mask is [N, length]`,
        );
    }
  }
  for (const input of signature.inputs) {
    if (!preprocessor.builders.some((b) => b.spec.name === input.name || b.spec.padding?.mask === input.name)) {
      fail('preprocess', `the model input "${input.name}" is not built by any preprocess tensor`);
    }
  }
  const outputNames = signature.outputs.map((o) => o.name).join(', ');
  for (const field of config.postprocess) {
    if (
      'output' in field.source &&
      !signature.outputs.some((o) => o.name === (field.source as { output: string }).output)
    ) {
      const name = field.source.output;
      const unserved = signature.unserved?.find((o) => o.name === name);
      if (unserved) {
        fail(
          `postprocess.${field.name}.output`,
          `output "${name}" is a ${unserved.type}, not a tensor: ONNX Runtime for Node cannot return it, so it is not served; use one of the tensor outputs ${outputNames}`,
        );
      }
      fail(
        `postprocess.${field.name}.output`,
        `the model has no output named "${field.source.output}"; its outputs are ${outputNames}`,
      );
    }
  }
}
