import { InvalidArgumentError } from 'commander';

/** A commander option parser for integers, naming the option when the value is wrong. */
export function parseIntegerOption(option: string, min = 0): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${option}: expected an integer >= ${min}, got "${value}"`);
    return n;
  };
}

/** A comma-separated list of positive integers, e.g. "1,2,4,8". */
export function parseIntegerListOption(option: string): (value: string) => number[] {
  return (value: string) => value.split(',').map((part) => parseIntegerOption(option, 1)(part.trim()));
}

/** A commander option parser for positive numbers (fractions allowed), naming the option when the value is wrong. */
export function parsePositiveNumberOption(option: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${option}: expected a positive number, got "${value}"`);
    return n;
  };
}

/** A commander option parser for numbers in [min, max] (fractions allowed), e.g. a weight from 0 to 1. */
export function parseNumberInRangeOption(option: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`${option}: expected a number from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** A commander option parser accepting one of a fixed set of words. */
export function parseChoiceOption<T extends string>(option: string, allowed: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(allowed as readonly string[]).includes(value))
      throw new InvalidArgumentError(`${option}: expected one of ${allowed.join(', ')}, got "${value}"`);
    return value as T;
  };
}
