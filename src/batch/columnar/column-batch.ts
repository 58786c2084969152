import type { DuckDBDataChunk } from '@duckdb/node-api';
import { duckdbBindings, duckdbConnection, sqlIdentifier } from '../io/duckdb-engine.ts';
import { PARSE_ERROR_COLUMN, scanSql, type ScanSource } from '../io/input-scan.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/**
 * Rows [firstRow, firstRow + rows) of one input file as one Float64Array per request field (NaN where null), then,
 * where the plan has parse errors, 1 for each row whose line could not be read.
 */
export interface ColumnBatch {
  firstRow: number;
  rows: number;
  values: Float64Array[];
}

/** read_parquet over rows [start, end) of the scanned file, in file order (row groups outside the range are skipped). */
export function rowRangeSql(source: ScanSource, start: number, end: number): string {
  const upper = Number.isFinite(end) ? ` AND file_row_number < ${end}` : '';
  return `${scanSql(source, true)} WHERE file_row_number >= ${start}${upper}`;
}

/**
 * A field's SELECT expression as the columnar reads take it: a DOUBLE that is never null (null reads as NaN), so a
 * chunk's column is copied as one typed array, with no per-value validity checks (copyDoubles).
 */
export function doubleOrNaN(sql: string): string {
  return `coalesce(${sql}, 'NaN'::DOUBLE)`;
}

/**
 * Copies rows [from, from + count) of DOUBLE column `column` of `chunk` into `out` at `at`, as one typed-array copy.
 * The query must not yield nulls in it (doubleOrNaN): a null's slot holds no defined value.
 */
export function copyDoubles(
  chunk: DuckDBDataChunk,
  column: number,
  from: number,
  count: number,
  out: Float64Array,
  at: number,
): void {
  const vector = duckdbBindings.data_chunk_get_vector(chunk.chunk, column);
  const type = duckdbBindings.vector_get_column_type(vector);
  if (duckdbBindings.get_type_id(type) !== duckdbBindings.Type.DOUBLE)
    throw new Error(`columnar batch: column ${column} is not DOUBLE`);
  const bytes = duckdbBindings.vector_get_data(vector, (from + count) * Float64Array.BYTES_PER_ELEMENT);
  out.set(new Float64Array(bytes.buffer, bytes.byteOffset + from * Float64Array.BYTES_PER_ELEMENT, count), at);
}

/**
 * Reads the plan's field columns for rows [start, end) (end may be Infinity) with the transforms that need strings
 * (dictionary codes) done by DuckDB; `expected` sizes the arrays (they grow if the file has more rows).
 */
export async function readColumnBatch(
  plan: ColumnarPlan,
  start: number,
  end: number,
  expected: number,
): Promise<ColumnBatch> {
  const connection = await duckdbConnection();
  try {
    const columns = plan.fields.map((f) => doubleOrNaN(f.sql));
    if (plan.parseErrors) columns.push(`CAST(${sqlIdentifier(PARSE_ERROR_COLUMN)} IS NOT NULL AS DOUBLE)`);
    const result = await connection.stream(`SELECT ${columns.join(', ')} FROM ${rowRangeSql(plan.source, start, end)}`);
    let capacity = Math.max(expected, 2048);
    let values = columns.map(() => new Float64Array(capacity));
    let rows = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      if (rows + chunk.rowCount > capacity) {
        capacity = Math.max(capacity * 2, rows + chunk.rowCount);
        values = values.map((old) => {
          const grown = new Float64Array(capacity);
          grown.set(old.subarray(0, rows));
          return grown;
        });
      }
      for (let c = 0; c < values.length; c++) copyDoubles(chunk, c, 0, chunk.rowCount, values[c]!, rows);
      rows += chunk.rowCount;
    }
    return { firstRow: start, rows, values: values.map((v) => v.subarray(0, rows)) };
  } finally {
    connection.closeSync();
  }
}
