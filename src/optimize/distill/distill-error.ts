import { CaliperError, type CaliperErrorCode } from '../../errors.ts';

/** Why a distillation was refused (the CALIPER_DISTILL_… codes of src/errors.ts); stable for scripts. */
export type DistillErrorCode = Extract<CaliperErrorCode, `CALIPER_DISTILL_${string}`>;

/** A refused distillation; the message names what was expected. */
export class DistillError extends CaliperError {
  declare readonly code: DistillErrorCode;

  constructor(code: DistillErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'DistillError';
  }
}

/** An option out of range (CALIPER_DISTILL_INVALID_OPTIONS); the message names the option and what it must be. */
export function invalidOption(message: string): DistillError {
  return new DistillError('CALIPER_DISTILL_INVALID_OPTIONS', message);
}
