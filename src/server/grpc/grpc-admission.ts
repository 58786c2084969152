import { invalidInput } from '../../errors.ts';
import type { AdmissionHints } from '../../pipeline/admission.ts';
import type { InferParameter, ModelInferRequest } from '../../protocol/service-definition.ts';
import { metadataValue, type AnyCall } from './call-metadata.ts';

function numericParameter(where: string, parameter: InferParameter | undefined): number | undefined {
  if (parameter === undefined) return undefined;
  const value = parameter.int64_param ?? parameter.uint64_param ?? parameter.double_param;
  if (
    value === undefined ||
    parameter.parameter_choice === 'string_param' ||
    parameter.parameter_choice === 'bool_param'
  ) {
    throw invalidInput(`${where}: expected an integer parameter (int64_param/uint64_param)`);
  }
  return value;
}

/**
 * What a gRPC request asked for, for `admit` (src/pipeline/admission.ts): the call's deadline, x-caliper-timeout-ms /
 * x-caliper-priority metadata, and Triton's `timeout` (microseconds, as Triton's gRPC clients send it; 0 is no timeout
 * of its own, as on REST) and `priority` request parameters. Throws CALIPER_INVALID_INPUT for a non-numeric one.
 */
export function grpcAdmissionHints(request: ModelInferRequest, call: AnyCall): AdmissionHints {
  const hints: AdmissionHints = { clientGone: () => call.cancelled };
  const timeoutMs = metadataValue(call, 'x-caliper-timeout-ms');
  if (timeoutMs !== undefined) hints.timeoutMs = timeoutMs;
  const timeoutUs = numericParameter('parameters.timeout', request.parameters?.timeout);
  if (timeoutUs !== undefined) hints.tritonTimeoutUs = timeoutUs;
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(deadlineMs)) hints.transportTimeoutMs = deadlineMs - Date.now();
  const priority = metadataValue(call, 'x-caliper-priority');
  if (priority !== undefined) hints.priority = priority;
  const tritonPriority = numericParameter('parameters.priority', request.parameters?.priority);
  if (tritonPriority !== undefined) hints.tritonPriority = tritonPriority;
  return hints;
}
