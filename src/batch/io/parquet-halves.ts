import { statSync } from 'node:fs';
import { ParquetJoinError, parquetRowGroupRows } from './parquet-footer.ts';

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
 * The first row of the second half of Parquet file `path` (a row-group boundary), from the row counts in its footer;
 * undefined (one COPY) for a file under `minBytes`, with fewer than two row groups, or whose footer this code cannot
 * read (the COPY then reads it, or says why not). DuckDB's parquet_metadata() answered the same in 12-14 ms of the
 * 1M-row job; reading it from the footer here took 1.2-2.3 ms (6 runs, load 4-5).
 */
export function parquetHalvesCut(path: string, minBytes: number): number | undefined {
  if (!(statSync(path).size >= minBytes)) return undefined;
  try {
    return rowGroupCut(parquetRowGroupRows(path));
  } catch (error) {
    if (error instanceof ParquetJoinError) return undefined;
    throw error;
  }
}
