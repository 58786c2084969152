import { DuckDBDoubleVector, type DuckDBDataChunk } from '@duckdb/node-api';
import { duckdbConnection, sqlString } from '../io/duckdb-engine.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/** Rows [firstRow, firstRow + rows) of one input file as one Float64Array per request field (NaN where null). */
export interface ColumnBatch {
  firstRow: number;
  rows: number;
  values: Float64Array[];
}

/** read_parquet over rows [start, end) of the file, in file order (row groups outside the range are skipped). */
export function rowRangeSql(file: string, start: number, end: number): string {
  const upper = Number.isFinite(end) ? ` AND file_row_number < ${end}` : '';
  return `read_parquet(${sqlString(file)}, file_row_number = true) WHERE file_row_number >= ${start}${upper}`;
}

function copyColumn(chunk: DuckDBDataChunk, column: number, out: Float64Array, offset: number): void {
  const vector = chunk.getColumnVector(column);
  if (!(vector instanceof DuckDBDoubleVector)) throw new Error(`columnar batch: column ${column} is not DOUBLE`);
  const n = chunk.rowCount;
  for (let r = 0; r < n; r++) out[offset + r] = vector.getItem(r) ?? NaN;
}

/**
 * Reads the plan's field columns for rows [start, end) (end may be Infinity) with the transforms that need strings
 * (dictionary codes) done by DuckDB; `expected` sizes the arrays (they grow if the file has more rows).
 */
export async function readColumnBatch(plan: ColumnarPlan, start: number, end: number, expected: number): Promise<ColumnBatch> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.stream(`SELECT ${plan.fields.map((f) => f.sql).join(', ')} FROM ${rowRangeSql(plan.file, start, end)}`);
    let capacity = Math.max(expected, 2048);
    let values = plan.fields.map(() => new Float64Array(capacity));
    let rows = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      if (rows + chunk.rowCount > capacity) {
        capacity = Math.max(capacity * 2, rows + chunk.rowCount);
        values = values.map((old) => { const grown = new Float64Array(capacity); grown.set(old.subarray(0, rows)); return grown; });
      }
      for (let c = 0; c < values.length; c++) copyColumn(chunk, c, values[c]!, rows);
      rows += chunk.rowCount;
    }
    return { firstRow: start, rows, values: values.map((v) => v.subarray(0, rows)) };
  } finally {
    connection.closeSync();
  }
}
