import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import type { DuckDBType } from '@duckdb/node-api';
import { CaliperError } from '../../errors.ts';
import type { InputFile } from './input-file.ts';
import { duckdbConnection, sqlString } from './duckdb-engine.ts';
import { temporaryPathFor } from './part-writer.ts';

/**
 * How DuckDB reads an input file. Parquet is scored where it lies; CSV and JSONL (plain, .gz or .zst) are parsed once
 * by DuckDB's readers (BOM, CRLF, quoted commas and newlines, doubled quotes, blank lines, header whitespace, type
 * sniffing) into a staged Parquet copy next to the job's manifest, so every format is scored from row-numbered Parquet:
 * column-wise, with row ranges (parts, shards, resume) read without re-parsing the text.
 */

/** A staged row whose line could not be read (JSONL that is not a JSON object): its reason, null for good rows. */
export const PARSE_ERROR_COLUMN = '__caliper_parse_error';

function hive(file: InputFile): string {
  return `hive_partitioning = ${file.hive ? 'true' : 'false'}`;
}

/** The DuckDB table function reading `file` as its format says (DuckDB picks .gz/.zst decompression by extension). */
export function readerSql(file: InputFile): string {
  const path = sqlString(file.path);
  switch (file.format) {
    case 'parquet':
      return `read_parquet(${path}, ${hive(file)})`;
    case 'csv':
      return `read_csv(${path}, header = true, ${hive(file)})`;
    case 'jsonl':
      return `read_json(${path}, format = 'newline_delimited', ${hive(file)})`;
  }
}

/**
 * A CSV file's dialect and column types as DuckDB's sniffer decides them for `readerSql` (header on), written out as
 * `read_csv` options with auto-detection off. Each `read_csv` with auto-detection sniffs the file again (25–40 ms for a
 * 28 MB file), and a job read it three times (its columns probed, its plan's schema, the scoring COPY); the job now
 * sniffs once and every later read names what the sniff found, so all of them read the same columns and types.
 */
export interface CsvDialect {
  /** The read_csv options, auto_detect = false and every sniffed option but `header` and `skip` (the caller says). */
  options: string;
  /** Lines before the header the sniffer found to skip. */
  skip: number;
  /** The quote character, '' for none (a byte split of the file is safe only outside quotes). */
  quote: string;
  /** The line end as read_csv's `new_line` option spells it: '\\n', '\\r\\n' or '\\r'. */
  newLine: string;
}

const dialects = new Map<string, Promise<CsvDialect | undefined>>();

/** `sniff_csv`'s answer for "nothing": its text for an unset quote, escape or comment. */
function sniffed(value: unknown): string {
  return value === null || value === undefined || value === '(empty)' ? '' : String(value);
}

async function sniffDialect(path: string): Promise<CsvDialect | undefined> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.runAndReadAll(
      `SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, Columns, DateFormat, TimestampFormat FROM sniff_csv(${sqlString(path)}, header = true)`,
    );
    const row = result.getRowObjectsJson()[0];
    if (!row) return undefined;
    const columns = row.Columns as { name: string; type: string }[];
    const options = [
      'auto_detect = false',
      `delim = ${sqlString(sniffed(row.Delimiter))}`,
      `quote = ${sqlString(sniffed(row.Quote))}`,
      `escape = ${sqlString(sniffed(row.Escape))}`,
      `new_line = ${sqlString(sniffed(row.NewLineDelimiter))}`,
      `comment = ${sqlString(sniffed(row.Comment))}`,
      `columns = {${columns.map((c) => `${sqlString(c.name)}: ${sqlString(c.type)}`).join(', ')}}`,
      ...(row.DateFormat ? [`dateformat = ${sqlString(String(row.DateFormat))}`] : []),
      ...(row.TimestampFormat ? [`timestampformat = ${sqlString(String(row.TimestampFormat))}`] : []),
    ];
    return {
      options: options.join(', '),
      skip: Number(row.SkipRows),
      quote: sniffed(row.Quote),
      newLine: sniffed(row.NewLineDelimiter),
    };
  } catch {
    // A file the sniffer refuses: the reader with auto-detection decides (and reports) as before.
    return undefined;
  } finally {
    connection.closeSync();
  }
}

/** The sniffed dialect of a CSV input (once per file and version of it in this process); undefined when not sniffable. */
export function csvDialect(file: InputFile): Promise<CsvDialect | undefined> {
  if (file.format !== 'csv') return Promise.resolve(undefined);
  let key = file.path;
  try {
    const stat = statSync(file.path);
    key = `${file.path}\0${stat.size}\0${stat.mtimeMs}`;
  } catch {
    return Promise.resolve(undefined);
  }
  let dialect = dialects.get(key);
  if (!dialect) {
    dialect = sniffDialect(file.path);
    dialects.set(key, dialect);
  }
  return dialect;
}

/** DuckDB's read_csv max_line_size when none is given (its error: "Maximum line size of 2000000 bytes exceeded"). */
const DUCKDB_MAX_LINE_BYTES = 2_000_000;

/**
 * read_csv of `path` with a sniffed dialect (no sniff of its own); `whole` false for a part of the file after its
 * first line: no header, no lines to skip. `bufferBytes`: the reader's buffer size (DuckDB's default is 32 MiB; lines
 * longer than DuckDB's default limit are refused either way).
 */
export function csvReaderSql(
  path: string,
  dialect: CsvDialect,
  whole: boolean,
  hivePartitioning: boolean,
  bufferBytes?: number,
): string {
  // A buffer_size given lifts DuckDB's longest-line check to the buffer: the reader then took lines the default readers
  // refuse (a 3,000,000-byte line: a CSV read in halves was scored, the same file in one COPY failed), so it is named.
  const buffer =
    bufferBytes !== undefined ? `, buffer_size = ${bufferBytes}, max_line_size = ${DUCKDB_MAX_LINE_BYTES}` : '';
  return `read_csv(${sqlString(path)}, ${dialect.options}, skip = ${whole ? dialect.skip : 0}, header = ${whole}, hive_partitioning = ${hivePartitioning}${buffer})`;
}

/** readerSql, with a CSV file's dialect sniffed once per process (csvDialect) instead of on every read. */
export async function sniffedReaderSql(file: InputFile): Promise<string> {
  const dialect = await csvDialect(file);
  return dialect ? csvReaderSql(file.path, dialect, true, file.hive ?? false) : readerSql(file);
}

/** A CSV whose types the sniffer got wrong past its sample: every column read as text (the model's types apply later). */
function csvAsTextSql(file: InputFile): string {
  return `read_csv(${sqlString(file.path)}, header = true, all_varchar = true, null_padding = true, strict_mode = false, ${hive(file)})`;
}

/**
 * JSONL with lines read_json refuses (not JSON, or not an object): read as lines, each good line shaped by the
 * structure of all good lines, each bad one kept as a row of nulls with its reason, so row numbers stay the file's.
 */
async function jsonlLinesSql(file: InputFile): Promise<string> {
  const lines = `(SELECT line FROM read_csv(${sqlString(file.path)}, columns = {'line': 'VARCHAR'}, header = false, delim = chr(1), quote = '', escape = '', auto_detect = false) WHERE line IS NOT NULL AND trim(line) <> '')`;
  // json_type only of valid lines: DuckDB evaluates both sides of an AND.
  const object = `CASE WHEN json_valid(line) THEN json_type(line::JSON) END`;
  const connection = await duckdbConnection();
  let structure: string | null;
  try {
    const result = await connection.runAndReadAll(
      `SELECT json_group_structure(CASE WHEN ${object} = 'OBJECT' THEN line::JSON END)::VARCHAR FROM ${lines}`,
    );
    structure = result.getRows()[0]?.[0] as string | null;
  } finally {
    connection.closeSync();
  }
  // A key holding numbers on some lines and text on others reads as text (the model's field type applies later).
  const shape = structure?.replaceAll(':"JSON"', ':"VARCHAR"');
  const reason = `CASE WHEN NOT json_valid(line) THEN 'invalid JSON: ' || left(line, 80) WHEN ${object} <> 'OBJECT' THEN 'expected a JSON object per line, got ' || CASE ${object} WHEN 'ARRAY' THEN 'an array' ELSE left(line, 80) END END`;
  if (!shape || shape === 'null') return `(SELECT ${reason} AS ${PARSE_ERROR_COLUMN} FROM ${lines})`;
  const row = `CASE WHEN ${object} = 'OBJECT' THEN json_transform(line, ${sqlString(shape)}) END`;
  return `(SELECT parsed.*, reason AS ${PARSE_ERROR_COLUMN} FROM (SELECT ${row} AS parsed, ${reason} AS reason FROM ${lines}))`;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

/** What the scorer reads for an input file: Parquet where it lies, else its staged copy (partition columns already in it). */
export interface ScanSource {
  path: string;
  hive: boolean;
  /** Strings came from text (CSV, JSONL): a request field types them as the model declares. */
  text: boolean;
}

export function scanSource(file: InputFile, stagedPath: string): ScanSource {
  return file.format === 'parquet'
    ? { path: file.path, hive: file.hive ?? false, text: false }
    : { path: stagedPath, hive: false, text: true };
}

/** read_parquet over the scan source, optionally with DuckDB's file_row_number column. */
export function scanSql(source: ScanSource, rowNumbers = false): string {
  return `read_parquet(${sqlString(source.path)}, hive_partitioning = ${source.hive ? 'true' : 'false'}${rowNumbers ? ', file_row_number = true' : ''})`;
}

/** Whether the scorer reads this file through a staged copy. */
export function needsStaging(file: InputFile): boolean {
  return file.format !== 'parquet';
}

/** Parses a CSV or JSONL input once into `target` (row-numbered Parquet), atomically; an existing copy is kept (resume). */
export async function stageInput(file: InputFile, target: string): Promise<void> {
  if (!needsStaging(file) || existsSync(target)) return;
  const tmp = temporaryPathFor(target);
  const connection = await duckdbConnection();
  const copy = (from: string): Promise<unknown> =>
    connection.run(`COPY (SELECT * FROM ${from}) TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION uncompressed)`);
  try {
    try {
      await copy(readerSql(file));
    } catch (error) {
      if (!existsSync(file.path)) throw error;
      // A value past the type sniffer's sample, a ragged CSV row, a JSONL line that is not an object: the slower readers keep every row.
      try {
        await copy(file.format === 'csv' ? csvAsTextSql(file) : await jsonlLinesSql(file));
      } catch (fallback) {
        if (process.env.CALIPER_DEBUG_SCAN) console.error(fallback);
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `${file.path}: cannot read as ${file.format.toUpperCase()}: ${firstLine(error)}`,
        );
      }
    }
    renameSync(tmp, target);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  } finally {
    connection.closeSync();
  }
}

/** The input's column names and DuckDB types as the scorer will see them (read from the file's first rows). */
export async function probeColumns(file: InputFile): Promise<{ names: string[]; types: DuckDBType[] }> {
  const connection = await duckdbConnection();
  try {
    let result;
    try {
      result = await connection.run(`SELECT * FROM ${await sniffedReaderSql(file)} LIMIT 0`);
    } catch (error) {
      if (file.format === 'parquet')
        throw new CaliperError('CALIPER_INVALID_INPUT', `${file.path}: cannot read as Parquet: ${firstLine(error)}`);
      try {
        result = await connection.run(
          `SELECT * FROM ${file.format === 'csv' ? csvAsTextSql(file) : await jsonlLinesSql(file)} LIMIT 0`,
        );
      } catch (fallback) {
        if (process.env.CALIPER_DEBUG_SCAN) console.error(fallback);
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `${file.path}: cannot read as ${file.format.toUpperCase()}: ${firstLine(error)}`,
        );
      }
    }
    const names = result.columnNames();
    const types = result.columnTypes();
    const keep = names.map((n) => n !== PARSE_ERROR_COLUMN);
    return { names: names.filter((_, i) => keep[i]), types: types.filter((_, i) => keep[i]) };
  } finally {
    connection.closeSync();
  }
}
