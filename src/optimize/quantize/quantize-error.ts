import { CaliperError, type CaliperErrorCode } from '../../errors.ts';

/** Why a quantization was refused (the CALIPER_QUANTIZE_… codes of src/errors.ts); stable for scripts. */
export type QuantizeErrorCode = Extract<CaliperErrorCode, `CALIPER_QUANTIZE_${string}`>;

/** A refused quantization; the message names what was expected. */
export class QuantizeError extends CaliperError {
  declare readonly code: QuantizeErrorCode;

  constructor(code: QuantizeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'QuantizeError';
  }
}
