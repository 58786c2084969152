import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

let instance: Promise<DuckDBInstance> | undefined;

/** One in-memory DuckDB per process, shared by the Parquet reader and writer; each user opens its own connection. */
export async function duckdbConnection(): Promise<DuckDBConnection> {
  const limit = process.env.CALIPER_DUCKDB_MEMORY;
  instance ??= DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true', ...(limit ? { memory_limit: limit } : {}) });
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
