import { availableParallelism } from 'node:os';
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

/**
 * The size (bytes) from which an input is scored in two halves (CALIPER_BATCH_HALVES_BYTES, else 8 MiB; a CSV also
 * needs a core to spare, scoring-copy.ts): Infinity on a machine of one core or where the setting is 'off'. Throws
 * CALIPER_CONFIG_INVALID when malformed, on any machine.
 */
export function halvesMinBytesSetting(): number {
  const setting = halvesBytesSetting();
  if (availableParallelism() < 2) return Number.POSITIVE_INFINITY;
  return setting ?? 8 << 20;
}

/**
 * CALIPER_BATCH_SECOND_HALF_THREAD: where a Parquet job's second half is scored. 'auto' (default): on the worker
 * thread started for it if it is ready when the halves start, else on the main thread; 'always': on that thread,
 * waiting for it to load; 'never': on the main thread (no second DuckDB or session is loaded).
 * Throws CALIPER_CONFIG_INVALID for any other value.
 */
export function secondHalfThreadSetting(): 'auto' | 'always' | 'never' {
  const name = 'CALIPER_BATCH_SECOND_HALF_THREAD';
  const value = process.env[name]?.trim() ?? '';
  if (value === '') return 'auto';
  if (value === 'auto' || value === 'always' || value === 'never') return value;
  throw invalidSetting(name, value, "'auto', 'always' or 'never'");
}

/**
 * CALIPER_BATCH_STITCH: 'auto' (unset) adds a Parquet job's predictions to the input's own column chunks where the
 * output allows it (parquet-stitch.ts); 'off' rewrites every column, as DuckDB's COPY does. Throws
 * CALIPER_CONFIG_INVALID for anything else.
 */
export function stitchSetting(): 'auto' | 'off' {
  const name = 'CALIPER_BATCH_STITCH';
  const value = process.env[name]?.trim() ?? '';
  if (value === '' || value === 'auto' || value === 'on') return 'auto';
  if (value === 'off') return 'off';
  throw invalidSetting(name, value, "'auto' or 'off'");
}

/** CALIPER_DUCKDB_THREADS: DuckDB's threads (≥ 1); undefined when unset. Throws CALIPER_CONFIG_INVALID when malformed. */
export function duckdbThreadsSetting(): number | undefined {
  return wholeNumberSetting('CALIPER_DUCKDB_THREADS', 1);
}
