import { statSync } from 'node:fs';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from './duckdb-engine.ts';

/**
 * A plain Parquet input scored in two halves side by side (scoring-copy.ts): each half a run of whole row groups,
 * read by its own single-threaded COPY through `read_parquet(…, file_row_number = true) WHERE file_row_number …`
 * (DuckDB skips the row groups outside the range), written to its own Parquet file, the two files then joined at the
 * footer without re-encoding (parquet-footer.ts). A 1M-row job (13.6 MB, 9 row groups) on one COPY took 0.48-0.60 s
 * (median 0.51), in two halves 0.34-0.63 s (median 0.37; 6 alternating pairs, load 2.9-3.3; joining the two 7 MB files
 * ≈ 20 ms); DuckDB's own 2-thread COPY buffers the row groups that finish out of order and its memory grew with
 * the input.
 */

/** Where the second half starts: the row-group boundary nearest the middle row (undefined: fewer than two groups). */
export function rowGroupCut(rowGroupRows: readonly number[]): number | undefined {
  if (rowGroupRows.length < 2) return undefined;
  const total = rowGroupRows.reduce((a, b) => a + b, 0);
  let best = 0;
  let at = 0;
  for (let g = 0; g < rowGroupRows.length - 1; g++) {
    at += rowGroupRows[g]!;
    if (Math.abs(at - total / 2) < Math.abs(best - total / 2)) best = at;
  }
  return best > 0 && best < total ? best : undefined;
}

/**
 * The first row of the second half of Parquet file `path` (a row-group boundary), read from its metadata on
 * `connection`; undefined (one COPY) for a file under `minBytes` or with fewer than two row groups.
 */
export async function parquetHalvesCut(
  connection: DuckDBConnection,
  path: string,
  minBytes: number,
): Promise<number | undefined> {
  if (!(statSync(path).size >= minBytes)) return undefined;
  const reader = await connection.runAndReadAll(
    `SELECT DISTINCT row_group_id, row_group_num_rows::BIGINT FROM parquet_metadata(${sqlString(path)}) ORDER BY row_group_id`,
  );
  return rowGroupCut(reader.getRows().map((r) => Number(r[1])));
}
