import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { CaliperError } from '../errors.ts';
import type { FeatureTable } from './feature-table.ts';

/**
 * A CSV feature file read with csv-parse, streamed in chunks (for the fraud example's 7.5 KB users.csv about a sixth
 * of the CPU time DuckDB took to load and read it: 0.11 s instead of 0.65 s; on par for 200,000 rows).
 * The rules: the first row is the header; fields are separated by the one of `,` `;` tab `|` found most often in the
 * header line (`,` when none is); `"` quotes a field (`""` inside is one quote; a quoted field may hold separators and
 * line breaks); LF or CRLF ends a row; a UTF-8 byte-order mark is skipped; cells are text as written (leading zeros,
 * spaces), an empty cell (quoted or not) is null. A row with another number of fields than the header, a header
 * naming a column twice or with an empty name, and an empty file are refused (CALIPER_INVALID_INPUT, naming the file
 * and the line).
 */
const CHUNK_ROWS = 4096;
const DELIMITERS = [',', ';', '\t', '|'] as const;

/** The field separator: the candidate found most often outside quotes in the header line (the first 64 KiB), else `,`. */
async function headerDelimiter(path: string): Promise<string> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    const counts = new Map<string, number>();
    let quoted = false;
    for (const char of buffer.subarray(0, bytesRead).toString('utf8')) {
      if (char === '"') quoted = !quoted;
      else if (!quoted && (char === '\n' || char === '\r')) break;
      else if (!quoted && (DELIMITERS as readonly string[]).includes(char))
        counts.set(char, (counts.get(char) ?? 0) + 1);
    }
    let best = ',';
    for (const delimiter of DELIMITERS) if ((counts.get(delimiter) ?? 0) > (counts.get(best) ?? 0)) best = delimiter;
    return best;
  } finally {
    await file.close();
  }
}

const EVENTS = ['readable', 'end', 'error', 'close'] as const;

/** Resolves on the stream's next 'readable', 'end', 'error' or 'close' (then the caller looks at its state). */
function nextEvent(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    const settle = (): void => {
      for (const event of EVENTS) stream.off(event, settle);
      resolve();
    };
    for (const event of EVENTS) stream.on(event, settle);
  });
}

/**
 * The file's rows (the header first) as arrays of cells, in the batches the parser has ready: records are drained
 * with `read()` rather than awaited one by one, and no per-cell cast is set (csv-parse's `cast` costs several times
 * the parse), so a large file (`caliper features load`) parses at csv-parse's own speed.
 */
async function* csvRowBatches(path: string, delimiter: string): AsyncGenerator<string[][]> {
  const parser = parse({ delimiter, bom: true, skip_empty_lines: true });
  // pipeline forwards a read error (a file that vanished) to the parser (then `errored`) and keeps an 'error' listener.
  pipeline(createReadStream(path), parser, () => {});
  try {
    for (;;) {
      const batch: string[][] = [];
      for (let row = parser.read() as string[] | null; row !== null; row = parser.read() as string[] | null)
        batch.push(row);
      if (batch.length > 0) yield batch;
      else if (parser.readableEnded) return;
      else if (parser.errored) throw parser.errored;
      else if (parser.destroyed) throw new Error('the file could not be read to its end');
      else await nextEvent(parser);
    }
  } finally {
    parser.destroy();
  }
}

function invalid(path: string, reason: string, cause?: unknown): CaliperError {
  return new CaliperError(
    'CALIPER_INVALID_INPUT',
    `${path}: cannot read the feature file: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

/** Opens a CSV feature file: reads it once for its header and row count, and again, in chunks, for its rows. */
export async function openCsvFeatureTable(path: string): Promise<FeatureTable> {
  const delimiter = await headerDelimiter(path);
  let columns: string[] | undefined;
  let rowCount = 0;
  try {
    for await (const batch of csvRowBatches(path, delimiter)) {
      columns ??= batch[0];
      rowCount += batch.length;
    }
  } catch (error) {
    throw invalid(path, (error as Error).message, error);
  }
  if (!columns) throw invalid(path, 'the file is empty (expected a header row naming the columns)');
  rowCount--;
  const empty = columns.indexOf('');
  if (empty !== -1) throw invalid(path, `the header's column ${empty + 1} has no name`);
  const repeated = columns.find((name, i) => columns!.indexOf(name) !== i);
  if (repeated !== undefined) throw invalid(path, `the header names column "${repeated}" twice`);
  const header = columns;
  return {
    path,
    columns: header,
    rowCount,
    async *chunks() {
      let chunk: Record<string, unknown>[] = [];
      let first = true;
      try {
        for await (const batch of csvRowBatches(path, delimiter)) {
          for (const cells of batch) {
            if (first) {
              first = false;
              continue;
            }
            const record: Record<string, unknown> = {};
            for (let c = 0; c < header.length; c++) record[header[c]!] = cells[c] === '' ? null : cells[c];
            chunk.push(record);
            if (chunk.length === CHUNK_ROWS) {
              yield chunk;
              chunk = [];
            }
          }
        }
      } catch (error) {
        throw invalid(path, (error as Error).message, error);
      }
      if (chunk.length > 0) yield chunk;
    },
    close() {},
  };
}
