import { CaliperError } from '../errors.ts';

/** Renders a value briefly for an error message. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/**
 * Reads typed values out of parsed YAML/JSON, failing with "FILE: field.path: expected X, got Y".
 * Each accessor takes the dotted path of the value so every error names the field.
 */
export class ConfigReader {
  constructor(readonly file: string) {}

  /** Throws CALIPER_CONFIG_INVALID naming the field; `got` (when passed, even `undefined`) is described after it. */
  fail(path: string, expected: string, ...got: [value?: unknown]): never {
    const suffix = got.length > 0 ? `, got ${describeValue(got[0])}` : '';
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `${this.file}: ${path || '(top level)'}: expected ${expected}${suffix}`,
    );
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, 'a mapping', value);
    return value as Record<string, unknown>;
  }

  /** Rejects keys that are not in `allowed` (typos in config are errors, not silently ignored). */
  onlyKeys(value: Record<string, unknown>, path: string, allowed: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        const where = path ? `${path}.${key}` : key;
        throw new CaliperError(
          'CALIPER_CONFIG_INVALID',
          `${this.file}: ${where}: unknown field (expected one of: ${allowed.join(', ')})`,
        );
      }
    }
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string' || value.length === 0) this.fail(path, 'a non-empty string', value);
    return value as string;
  }

  number(
    value: unknown,
    path: string,
    bounds: { min?: number; max?: number; integer?: boolean; exclusiveMin?: number } = {},
  ): number {
    const kind = bounds.integer ? 'an integer' : 'a number';
    if (typeof value !== 'number' || !Number.isFinite(value) || (bounds.integer && !Number.isInteger(value)))
      this.fail(path, kind, value);
    const n = value as number;
    if (bounds.min !== undefined && n < bounds.min) this.fail(path, `${kind} >= ${bounds.min}`, n);
    if (bounds.exclusiveMin !== undefined && n <= bounds.exclusiveMin)
      this.fail(path, `${kind} > ${bounds.exclusiveMin}`, n);
    if (bounds.max !== undefined && n > bounds.max) this.fail(path, `${kind} <= ${bounds.max}`, n);
    return n;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, 'true or false', value);
    return value as boolean;
  }

  oneOf<T extends string>(value: unknown, path: string, choices: readonly T[]): T {
    if (typeof value !== 'string' || !choices.includes(value as T))
      this.fail(path, `one of ${choices.join(', ')}`, value);
    return value as T;
  }

  array(value: unknown, path: string, options: { minLength?: number } = {}): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'a list', value);
    const list = value as unknown[];
    if (options.minLength !== undefined && list.length < options.minLength)
      this.fail(path, `a list of at least ${options.minLength}`, list);
    return list;
  }

  stringList(value: unknown, path: string, options: { minLength?: number; unique?: boolean } = {}): string[] {
    const list = this.array(value, path, options).map((item, i) => this.string(item, `${path}[${i}]`));
    if (options.unique && new Set(list).size !== list.length) this.fail(path, 'a list without duplicates', list);
    return list;
  }

  numberList(
    value: unknown,
    path: string,
    bounds: { min?: number; integer?: boolean; minLength?: number } = {},
  ): number[] {
    return this.array(value, path, bounds).map((item, i) => this.number(item, `${path}[${i}]`, bounds));
  }
}
