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
  return choiceSetting('CALIPER_BATCH_SECOND_HALF_THREAD', ['auto', 'always', 'never']);
}

/**
 * The word in environment variable `name`, one of `choices`; the first when it is unset or empty, and `aliases`'
 * words as the word they stand for. Throws CALIPER_CONFIG_INVALID for any other value.
 */
function choiceSetting<T extends string>(name: string, choices: readonly T[], aliases: Record<string, T> = {}): T {
  const value = process.env[name]?.trim() ?? '';
  if (value === '') return choices[0]!;
  const choice = (choices as readonly string[]).includes(value) ? (value as T) : aliases[value];
  if (choice !== undefined) return choice;
  const quoted = choices.map((c) => `'${c}'`);
  throw invalidSetting(name, value, `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`);
}

/**
 * CALIPER_BATCH_STITCH: 'auto' (unset) adds a Parquet job's predictions to the input's own column chunks where the
 * output allows it (parquet-stitch.ts); 'off' rewrites every column, as DuckDB's COPY does. Throws
 * CALIPER_CONFIG_INVALID for anything else.
 */
export function stitchSetting(): 'auto' | 'off' {
  return choiceSetting('CALIPER_BATCH_STITCH', ['auto', 'off'], { on: 'auto' });
}

/** CALIPER_DUCKDB_THREADS: DuckDB's threads (≥ 1); undefined when unset. Throws CALIPER_CONFIG_INVALID when malformed. */
export function duckdbThreadsSetting(): number | undefined {
  return wholeNumberSetting('CALIPER_DUCKDB_THREADS', 1);
}
