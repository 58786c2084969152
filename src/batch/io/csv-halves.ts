import { closeSync, fstatSync, openSync, readSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { copyBytes, freeBytes } from './file-bytes.ts';
import type { CsvDialect } from './input-scan.ts';

/**
 * A plain CSV file cut in two at a line end near its middle, each half copied to its own file, so that two
 * single-threaded DuckDB COPYs can score the halves side by side and their outputs be joined end to end in input order
 * (scoring-copy.ts). DuckDB's own parallel CSV COPY keeps the order too but buffers the row groups that finish out of
 * order: its peak memory grew with the input (1M → 5M rows: 199 → 359 MiB copying alone, 265–280 → 445 MiB scoring).
 */

/** Bytes read at a time while looking for the cut. */
const CHUNK = 8 << 20;

/** The two halves: `first` holds the header and the rows before the cut, `second` the rows after it (no header). */
export interface CsvHalves {
  first: string;
  second: string;
  /** Byte offset of the cut in the input (the first byte of the second half). */
  cut: number;
}

/**
 * Cuts `path` (uncompressed CSV in `dialect`) after the first line end at or past its middle byte into `first` and
 * `second`. Undefined (and nothing left behind) where a cut is not certain to fall between two rows: a line end other
 * than `\n` or `\r\n`, a quote character anywhere before the cut (a quoted field may hold a line end), no line end in
 * the second half; and for a file under `minBytes`, or where the halves' folder has less than twice the file's size free
 * (the halves take its size, the output about as much again). Throws only when reading or writing fails.
 */
export function splitCsvInHalves(
  path: string,
  dialect: CsvDialect,
  first: string,
  second: string,
  minBytes: number,
  free: (dir: string) => number = freeBytes,
): CsvHalves | undefined {
  if (dialect.newLine !== '\\n' && dialect.newLine !== '\\r\\n') return undefined;
  const input = openSync(path, 'r');
  try {
    const size = fstatSync(input).size;
    if (size < minBytes || size < 2 || free(dirname(first)) < 2 * size) return undefined;
    const buffer = Buffer.allocUnsafe(CHUNK);
    const quote = dialect.quote === '' ? -1 : dialect.quote.charCodeAt(0);
    // The cut: one past the first '\n' at or after the middle byte.
    let cut = -1;
    for (let at = Math.floor(size / 2); cut < 0 && at < size; at += CHUNK) {
      const n = readSync(input, buffer, 0, CHUNK, at);
      if (n <= 0) break;
      const newline = buffer.subarray(0, n).indexOf(10);
      if (newline >= 0) cut = at + newline + 1;
    }
    if (cut < 0 || cut >= size) return undefined;
    const ended = (at: number): Error => new Error(`${path}: ended at byte ${at} while being read`);
    const noQuote = (chunk: Buffer): boolean => quote < 0 || chunk.indexOf(quote) < 0;
    const copy = (target: string, from: number, to: number, checkQuotes: boolean): boolean => {
      const out = openSync(target, 'w');
      try {
        return copyBytes(input, from, to, out, 0, ended, checkQuotes ? noQuote : undefined);
      } finally {
        closeSync(out);
      }
    };
    try {
      if (!copy(first, 0, cut, true)) {
        rmSync(first, { force: true });
        return undefined;
      }
      copy(second, cut, size, false);
    } catch (error) {
      rmSync(first, { force: true });
      rmSync(second, { force: true });
      throw error;
    }
    return { first, second, cut };
  } finally {
    closeSync(input);
  }
}

/** Appends the bytes of `from` to `to` (the second half's output after the first's). */
export function appendFile(to: string, from: string): void {
  const source = openSync(from, 'r');
  const target = openSync(to, 'a');
  try {
    const size = fstatSync(source).size;
    copyBytes(source, 0, size, target, null, (at) => new Error(`${from}: ended at byte ${at} while being read`));
  } finally {
    closeSync(source);
    closeSync(target);
  }
}
