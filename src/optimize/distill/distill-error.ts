/** Why a distillation was refused; `code` is stable for scripts, the message names what was expected. */
export type DistillErrorCode =
  | 'CALIPER_DISTILL_INVALID_OPTIONS'
  | 'CALIPER_DISTILL_STUDENT_SPEC'
  | 'CALIPER_DISTILL_TEACHER'
  | 'CALIPER_DISTILL_DATA'
  | 'CALIPER_DISTILL_EXPORT_MISMATCH';

export class DistillError extends Error {
  constructor(
    readonly code: DistillErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DistillError';
  }
}
