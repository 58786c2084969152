/** Why a quantization was refused; `code` is stable for scripts, the message names what was expected. */
export type QuantizeErrorCode =
  | 'CALIPER_QUANTIZE_NOT_ONNX'
  | 'CALIPER_QUANTIZE_UNSUPPORTED_MODEL'
  | 'CALIPER_QUANTIZE_ALREADY_QUANTIZED'
  | 'CALIPER_QUANTIZE_NOTHING_TO_DO'
  | 'CALIPER_QUANTIZE_CALIBRATION_DATA'
  | 'CALIPER_QUANTIZE_EVAL_DATA'
  | 'CALIPER_QUANTIZE_INVALID_OPTIONS'
  | 'CALIPER_QUANTIZE_BROKEN_OUTPUT'
  /** The result lost more accuracy than --max-drop allows, or is larger or slower than the original; not written. */
  | 'CALIPER_QUANTIZE_GUARD';

export class QuantizeError extends Error {
  constructor(
    readonly code: QuantizeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'QuantizeError';
  }
}
