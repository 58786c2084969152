import { invalidInput } from '../errors.ts';
import { priorityFromTriton } from '../protocol/triton-priority.ts';

/** What a request is admitted with: when its answer is due, its priority, and how to tell its client left. */
export interface InferenceOptions {
  /** performance.now() time by which the answer is due. */
  deadline?: number;
  /** 0 is the highest priority. */
  priority?: number;
  /** True once the client has left (socket closed, call cancelled): queued work for it is dropped. */
  clientGone?: () => boolean;
}

/**
 * What one request asked for, whatever carried it; each protocol adapter copies its wire fields here unparsed and
 * `admit` alone decides what they mean.
 */
export interface AdmissionHints {
  /** `x-caliper-timeout-ms` (HTTP header or gRPC metadata): milliseconds, as sent. */
  timeoutMs?: string | number;
  /** Triton's `timeout` request parameter (REST `parameters.timeout`, gRPC `timeout`): microseconds, as sent. */
  tritonTimeoutUs?: unknown;
  /** Milliseconds left until the transport's own deadline (a gRPC call deadline). */
  transportTimeoutMs?: number;
  /** `x-caliper-priority` (HTTP header or gRPC metadata): Caliper's levels, 0 the highest, as sent. */
  priority?: string | number;
  /** Triton's `priority` request parameter: 0 the model's default, 1 the highest. `priority` wins when both are sent. */
  tritonPriority?: unknown;
  /** True once the client has left. */
  clientGone?: () => boolean;
}

/** The part of a served version admission reads: its name and its batching settings (deadline and priority levels). */
export interface AdmittedVersion {
  readonly name: string;
  readonly config: { readonly batching: { readonly timeoutMs: number; readonly priorityLevels: number } };
}

/**
 * Admits one request to `version`: its deadline (now + the tightest of the timeouts asked for, never later than the
 * model's `batching.timeout_ms`) and its priority level. The one place deadline and priority are parsed, for
 * `/predict`, v2 REST and gRPC alike; readiness is decided before, where the request is routed to a version
 * (ModelRepository.inferenceVersion). Throws CALIPER_INVALID_INPUT (400) naming the header or parameter at fault.
 */
export function admit(version: AdmittedVersion, hints: AdmissionHints): InferenceOptions {
  const { timeoutMs: modelTimeoutMs, priorityLevels } = version.config.batching;
  let timeout = modelTimeoutMs;
  if (hints.timeoutMs !== undefined) {
    const requested = Number(hints.timeoutMs);
    if (!Number.isFinite(requested) || requested <= 0)
      throw invalidInput(`x-caliper-timeout-ms: expected a positive number of milliseconds, got "${hints.timeoutMs}"`);
    timeout = Math.min(timeout, requested);
  }
  if (hints.tritonTimeoutUs !== undefined) {
    const us = hints.tritonTimeoutUs;
    // 0 asks for no timeout of its own (the model's applies), as Triton reads it on both protocols.
    if (typeof us !== 'number' || !Number.isFinite(us) || us < 0)
      throw invalidInput(
        `parameters.timeout: expected 0 (no timeout) or a positive number of microseconds, got ${JSON.stringify(us)}`,
      );
    if (us > 0) timeout = Math.min(timeout, us / 1000);
  }
  if (hints.transportTimeoutMs !== undefined) timeout = Math.min(timeout, Math.max(hints.transportTimeoutMs, 0.001));
  const options: InferenceOptions = { deadline: performance.now() + timeout };
  const tritonLevel =
    hints.tritonPriority === undefined
      ? undefined
      : priorityFromTriton('parameters.priority', hints.tritonPriority, priorityLevels);
  if (hints.priority !== undefined) {
    const level = Number(hints.priority);
    if (!Number.isInteger(level) || level < 0 || level >= priorityLevels) {
      throw invalidInput(
        priorityLevels === 1
          ? `x-caliper-priority: expected an integer from 0 to 0, got "${hints.priority}": model ${version.name} has one priority level; set batching.priority_levels in its model.yaml to use priorities`
          : `x-caliper-priority: expected an integer from 0 (highest) to ${priorityLevels - 1} (batching.priority_levels: ${priorityLevels}), got "${hints.priority}"`,
      );
    }
    options.priority = level;
  } else if (tritonLevel !== undefined) {
    options.priority = tritonLevel;
  }
  if (hints.clientGone) options.clientGone = hints.clientGone;
  return options;
}
