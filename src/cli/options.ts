import { InvalidArgumentError } from 'commander';

/** A commander option parser for integers, naming the option when the value is wrong. */
export function parseIntegerOption(option: string, min = 0): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${option}: expected an integer >= ${min}, got "${value}"`);
    return n;
  };
}

/** A comma-separated list of positive integers, e.g. "1,2,4,8". */
export function parseIntegerListOption(option: string): (value: string) => number[] {
  return (value: string) => value.split(',').map((part) => parseIntegerOption(option, 1)(part.trim()));
}
