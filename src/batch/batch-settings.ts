import { CaliperError } from '../errors.ts';

/**
 * The environment settings of `caliper batch` and `caliper worker` that hold a number, read where they apply and
 * refused with a message naming the variable and what it expects. Read with `Number()`, a malformed value became NaN:
 * CALIPER_BATCH_HALVES_BYTES=8M cut every CSV input in halves, however small (NaN compares false with any size), and
 * CALIPER_DUCKDB_THREADS=two stopped the job with DuckDB's "Failed to set config", naming nothing.
 */

function invalidSetting(name: string, value: string, expected: string): CaliperError {
  return new CaliperError('CALIPER_CONFIG_INVALID', `${name}=${JSON.stringify(value)}: expected ${expected}`);
}

/**
 * The whole number (≥ `min`) in environment variable `name`; undefined when it is unset or empty.
 * Throws CALIPER_CONFIG_INVALID for anything else (units, fractions, signs, a number below `min`).
 */
export function wholeNumberSetting(name: string, min: number): number | undefined {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') return undefined;
  const number = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min)
    throw invalidSetting(name, value, `a whole number${min > 0 ? ` of at least ${min}` : ''}`);
  return number;
}

/**
 * CALIPER_BATCH_HALVES_BYTES: the size (bytes) from which a CSV input is scored in two halves side by side; 'off'
 * (Infinity) never; undefined when unset (the caller's default). Throws CALIPER_CONFIG_INVALID when malformed.
 */
export function halvesBytesSetting(): number | undefined {
  const name = 'CALIPER_BATCH_HALVES_BYTES';
  if (process.env[name]?.trim() === 'off') return Number.POSITIVE_INFINITY;
  try {
    return wholeNumberSetting(name, 0);
  } catch {
    throw invalidSetting(name, process.env[name] ?? '', "a size in bytes (a whole number, e.g. 8388608) or 'off'");
  }
}

/** CALIPER_DUCKDB_THREADS: DuckDB's threads (≥ 1); undefined when unset. Throws CALIPER_CONFIG_INVALID when malformed. */
export function duckdbThreadsSetting(): number | undefined {
  return wholeNumberSetting('CALIPER_DUCKDB_THREADS', 1);
}
