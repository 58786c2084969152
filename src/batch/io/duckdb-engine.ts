import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

let instance: Promise<DuckDBInstance> | undefined;
let threads: number | undefined;

/**
 * DuckDB's worker threads for this process (default: one per core, or CALIPER_DUCKDB_THREADS). `caliper worker`
 * sets 1 so that one worker process uses about one core and workers scale by process. Call before the first query.
 */
export function setDuckdbThreads(count: number): void {
  threads = count;
}

/** One in-memory DuckDB per process, shared by the Parquet reader and writer; each user opens its own connection. */
export async function duckdbConnection(): Promise<DuckDBConnection> {
  const limit = process.env.CALIPER_DUCKDB_MEMORY;
  const threadCount =
    threads ?? (process.env.CALIPER_DUCKDB_THREADS ? Number(process.env.CALIPER_DUCKDB_THREADS) : undefined);
  instance ??= DuckDBInstance.create(':memory:', {
    preserve_insertion_order: 'true',
    ...(limit ? { memory_limit: limit } : {}),
    ...(threadCount !== undefined ? { threads: String(threadCount) } : {}),
  });
  return (await instance).connect();
}

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A SQL identifier (column or table name). */
export function sqlIdentifier(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}
