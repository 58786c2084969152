import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as DuckDBApi from '@duckdb/node-api';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type DuckDBBindings from '@duckdb/node-bindings';
import { CaliperError } from '../../errors.ts';
import { requireBundledDependency } from '../../system/bundled-dependency.ts';
import { duckdbThreadsSetting } from '../batch-settings.ts';

/**
 * @duckdb/node-api (CommonJS), loaded with `require`: an ES `import` of it makes Node scan each of its ~70 re-exported
 * files for their export names (cjs-module-lexer), about 0.3 s of CPU on every `caliper batch` start; in the built
 * package it comes from the build's one-file bundle of it (bundled-dependency.ts).
 * Batch modules take its values (classes, type constants) from here and its types from `import type`.
 */
export const duckdb: typeof DuckDBApi = requireBundledDependency<typeof DuckDBApi>('@duckdb/node-api');

/**
 * The C API beneath it (@duckdb/node-bindings, the version @duckdb/node-api pins), for bulk access to a vector's data:
 * `vector_get_data` answers a column of a data chunk as bytes in one call, where the API's vectors answer a value
 * per call (with a BigInt validity test each).
 */
export const duckdbBindings: typeof DuckDBBindings = createRequire(import.meta.url)('@duckdb/node-bindings');

let instance: Promise<DuckDBInstance> | undefined;
let threads: number | undefined;
/** The instance was opened on one thread for a job scored in one pass (openDuckdbOnOneThread). */
let openedOnOneThread = false;
let leftOneThread = false;

/**
 * DuckDB's worker threads for this process (default: one per core, or CALIPER_DUCKDB_THREADS). `caliper worker`
 * sets 1 so that one worker process uses about one core and workers scale by process. Call before the first query.
 */
export function setDuckdbThreads(count: number): void {
  threads = count;
}

/**
 * Opens this process's DuckDB on one thread, if it is not open yet: for a `caliper batch` job that will likely be scored
 * in one pass, whose COPYs run on one thread each (scoring-copy.ts). Setting one thread on an instance opened with
 * more, and the count back after the COPY, cost ≈ 9 ms of a 0.3 s job (DuckDB stops and starts its threads); the job
 * takes its configured threads only if it leaves the one pass for the parts path (leaveOneThread).
 */
export function openDuckdbOnOneThread(): void {
  if (!instance) openedOnOneThread = true;
}

/**
 * For a job that leaves the one pass (it does not apply, or declined): gives a DuckDB opened on one thread by
 * openDuckdbOnOneThread its configured threads (setDuckdbThreads, else CALIPER_DUCKDB_THREADS, else one per core), once.
 * Does nothing for an instance opened otherwise.
 */
export async function leaveOneThread(): Promise<void> {
  if (!openedOnOneThread || leftOneThread) return;
  leftOneThread = true;
  const connection = await duckdbConnection();
  try {
    await connection.run(`SET threads = ${threads ?? duckdbThreadsSetting() ?? availableParallelism()}`);
  } finally {
    connection.closeSync();
  }
}

/** One in-memory DuckDB per process, shared by the Parquet reader and writer; each user opens its own connection. */
export async function duckdbConnection(): Promise<DuckDBConnection> {
  const limit = process.env.CALIPER_DUCKDB_MEMORY?.trim();
  // Read (and a malformed value refused) even where the instance opens on one thread: the count is the job's later.
  const configured = threads ?? duckdbThreadsSetting();
  const threadCount = openedOnOneThread ? 1 : configured;
  instance ??= duckdb.DuckDBInstance.create(':memory:', {
    preserve_insertion_order: 'true',
    // Files are read in order, each at most twice (scored, then joined into the output): DuckDB's cache of file
    // blocks would keep the whole input in memory, growing with the input (batch peak memory is flat without it).
    enable_external_file_cache: process.env.CALIPER_DUCKDB_FILE_CACHE === '1' ? 'true' : 'false',
    ...(limit ? { memory_limit: limit } : {}),
    ...(threadCount !== undefined ? { threads: String(threadCount) } : {}),
  }).catch((error: unknown) => {
    // The other settings are fixed or checked above: DuckDB's refusal ("Failed to set config") is the memory limit's.
    if (!limit) throw error;
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `CALIPER_DUCKDB_MEMORY=${JSON.stringify(limit)}: DuckDB refused it as a memory limit (expected a size such as 4GB or 512MiB)`,
      { cause: error },
    );
  });
  return (await instance).connect();
}

let writerInstance: Promise<DuckDBInstance> | undefined;

/**
 * A connection to a second in-memory DuckDB of one thread, for the small tables written while a long streamed read
 * is open on the shared one: DuckDB keeps every version a running transaction might still see, so tables created,
 * filled and dropped beside a read that lasts the whole file were all kept until it ended (memory grew with the file).
 */
export async function writerConnection(): Promise<DuckDBConnection> {
  writerInstance ??= duckdb.DuckDBInstance.create(':memory:', { threads: '1', preserve_insertion_order: 'true' });
  return (await writerInstance).connect();
}

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A SQL identifier (column or table name). */
export function sqlIdentifier(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}

let collect: ((options?: { type: 'minor' | 'major' }) => void) | null | undefined;

/** V8's gc function (enabled here at run time), or null where it cannot be enabled. */
function garbageCollector(): ((options?: { type: 'minor' | 'major' }) => void) | null {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/**
 * Frees the native memory of the data chunks a long streamed read has already handed over. @duckdb/node-api frees a
 * chunk only when V8 collects its small wrapper, and V8 does not count the chunk's native memory, so a read of
 * millions of rows kept hundreds of MiB of consumed chunks alive and peak memory grew with the file. A full collection
 * (V8's gc, enabled here at run time; the wrappers outlive young-generation collections while a part is scored)
 * releases them; where gc cannot be enabled this does nothing.
 */
export function releaseConsumedChunks(): void {
  garbageCollector()?.();
}

/**
 * Frees the copies of vector data read since the last call: `vector_get_data` answers each read with a fresh copy
 * (16 KiB for a vector of 2048 doubles), freed only when V8 collects it. Left to V8's own heuristics, a one-pass job's
 * ~1,500 vector reads per million rows each took fresh memory from the allocator (≈ 10,000 more page faults per job);
 * a young-generation collection every few vectors hands the same memory back for the next reads. Where gc cannot be
 * enabled this does nothing.
 */
export function releaseVectorCopies(): void {
  garbageCollector()?.({ type: 'minor' });
}
