import { describeValue } from '../config/config-reader.ts';
import { invalidInput } from '../errors.ts';

/**
 * Triton's request priority, as its clients send it (REST `parameters.priority`, gRPC `priority` parameter):
 * 0 asks for the model's default level, 1 is the highest, larger numbers are lower, and a level past the
 * model's `priority_levels` is the default too. Caliper's own levels (x-caliper-priority) count from
 * 0 = highest, so Triton's level p is Caliper's p - 1. Returns undefined for "the default".
 */
export function priorityFromTriton(where: string, value: unknown, levels: number): number | undefined {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidInput(
      `${where}: expected an unsigned integer (Triton's priority: 0 the model's default, 1 the highest, larger lower), got ${describeValue(value)}`,
    );
  }
  if (value === 0 || value > levels) return undefined;
  return value - 1;
}
