import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DuckDBAppender, DuckDBConnection, DuckDBDataChunk, DuckDBType, DuckDBValue } from '@duckdb/node-api';
import type { Prediction } from '../../pipeline/postprocess.ts';
import type { BatchFormat } from './batch-format.ts';
import { duckdb, duckdbConnection, sqlIdentifier, sqlString } from './duckdb-engine.ts';
import type { OutputColumn } from '../output-columns.ts';
import { exactValueOf, type SourceRow } from './source-row.ts';
import { stringifyExactJson } from '../../runtime/exact-json.ts';

/**
 * One output part being written to a hidden temporary file next to its final name; commit() makes it
 * visible with one rename (atomic on one filesystem), so a reader sees a whole part or none.
 */
export interface PartWriter {
  append(rows: readonly SourceRow[], predictions: readonly (Prediction | null)[]): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export function temporaryPathFor(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

const NUMBER_TEXT = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

function cellOf(column: OutputColumn, row: SourceRow, prediction: Prediction | null): unknown {
  if (column.from === 'input') {
    const value = row[column.name] ?? null;
    // CSV text in a numeric column is written as a number (JSONL, Parquet); text that is no number stays as it is.
    if (typeof value === 'string' && (column.kind === 'double' || column.kind === 'integer') && NUMBER_TEXT.test(value))
      return Number(value);
    return value;
  }
  return prediction ? (prediction[column.name] ?? null) : null;
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text =
    typeof value === 'string' ? value : typeof value === 'object' ? stringifyExactJson(value) : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** CSV (with a header) and JSONL parts: text appended to the temporary file, fsynced before the rename. */
class TextPartWriter implements PartWriter {
  private constructor(
    private readonly handle: FileHandle,
    private readonly tmp: string,
    private readonly finalPath: string,
    private readonly format: 'csv' | 'jsonl',
    private readonly columns: readonly OutputColumn[],
  ) {}

  static async open(
    finalPath: string,
    format: 'csv' | 'jsonl',
    columns: readonly OutputColumn[],
  ): Promise<TextPartWriter> {
    const tmp = temporaryPathFor(finalPath);
    const handle = await open(tmp, 'w');
    const writer = new TextPartWriter(handle, tmp, finalPath, format, columns);
    if (format === 'csv') await handle.write(`${columns.map((c) => csvCell(c.name)).join(',')}\n`);
    return writer;
  }

  async append(rows: readonly SourceRow[], predictions: readonly (Prediction | null)[]): Promise<void> {
    const lines: string[] = new Array(rows.length);
    for (let r = 0; r < rows.length; r++) {
      if (this.format === 'csv') {
        lines[r] = this.columns.map((c) => csvCell(cellOf(c, rows[r]!, predictions[r]!))).join(',');
      } else {
        const object: Record<string, unknown> = {};
        for (const c of this.columns) object[c.name] = cellOf(c, rows[r]!, predictions[r]!);
        lines[r] = stringifyExactJson(object);
      }
    }
    if (lines.length > 0) await this.handle.write(`${lines.join('\n')}\n`);
  }

  async commit(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
    await rename(this.tmp, this.finalPath);
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}

const DUCKDB_TYPES = {
  double: duckdb.DOUBLE,
  integer: duckdb.BIGINT,
  boolean: duckdb.BOOLEAN,
  string: duckdb.VARCHAR,
  json: duckdb.VARCHAR,
} as const;
const DUCKDB_SQL_TYPES = {
  double: 'DOUBLE',
  integer: 'BIGINT',
  boolean: 'BOOLEAN',
  string: 'VARCHAR',
  json: 'VARCHAR',
} as const;
const CHUNK_ROWS = 2048;

function duckdbValue(column: OutputColumn, value: unknown): DuckDBValue {
  if (value === null || value === undefined) return null;
  switch (column.kind) {
    case 'double': {
      const n = typeof value === 'number' ? value : Number(value);
      return Number.isNaN(n) && typeof value !== 'number' ? null : n;
    }
    case 'integer': {
      if (typeof value === 'bigint') return value;
      const n = typeof value === 'number' ? value : Number(value);
      return Number.isFinite(n) ? BigInt(Math.trunc(n)) : null;
    }
    case 'boolean':
      return typeof value === 'boolean' ? value : value === 'true' ? true : value === 'false' ? false : null;
    case 'string':
      return typeof value === 'string' ? value : stringifyExactJson(value);
    case 'json':
      return stringifyExactJson(value);
  }
}

let tableCounter = 0;

/** Parquet parts: rows appended to a DuckDB in-memory table in data chunks, COPY'd to the temporary file on commit. */
class ParquetPartWriter implements PartWriter {
  // One chunk reused for every append: chunks hold native memory that is only freed when V8 collects the
  // wrapper, and V8 does not see that memory, so a new chunk per 2048 rows made memory grow with the input.
  private chunk: DuckDBDataChunk | undefined;

  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly appender: DuckDBAppender,
    private readonly table: string,
    private readonly finalPath: string,
    private readonly columns: readonly OutputColumn[],
    private readonly types: readonly DuckDBType[],
  ) {}

  static async open(finalPath: string, columns: readonly OutputColumn[]): Promise<ParquetPartWriter> {
    const connection = await duckdbConnection();
    const table = `caliper_part_${process.pid}_${tableCounter++}`;
    // A kept column with an exact type (Parquet input) is created with it; the rest by their kind.
    await connection.run(
      `CREATE TABLE ${table} (${columns.map((c) => `${sqlIdentifier(c.name)} ${c.sqlType ?? DUCKDB_SQL_TYPES[c.kind]}`).join(', ')})`,
    );
    const types = columns.some((c) => c.sqlType !== undefined)
      ? (await connection.run(`SELECT * FROM ${table} LIMIT 0`)).columnTypes()
      : columns.map((c) => DUCKDB_TYPES[c.kind]);
    const appender = await connection.createAppender(table);
    return new ParquetPartWriter(connection, appender, table, finalPath, columns, types);
  }

  async append(rows: readonly SourceRow[], predictions: readonly (Prediction | null)[]): Promise<void> {
    const types = this.types;
    for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows.length - start);
      const values: DuckDBValue[][] = this.columns.map((column) => {
        const out: DuckDBValue[] = new Array(n);
        if (column.sqlType !== undefined) {
          // The reader's own value when the plain one is not exact; plain numbers, strings and booleans are.
          for (let r = 0; r < n; r++) {
            const row = rows[start + r]!;
            out[r] = (exactValueOf(row, column.name) ?? row[column.name] ?? null) as DuckDBValue;
          }
          return out;
        }
        const simple = column.kind === 'double' || column.kind === 'boolean';
        for (let r = 0; r < n; r++) {
          const value = cellOf(column, rows[start + r]!, predictions[start + r]!);
          out[r] =
            simple && typeof value === (column.kind === 'double' ? 'number' : 'boolean')
              ? (value as number | boolean)
              : duckdbValue(column, value);
        }
        return out;
      });
      this.chunk ??= duckdb.DuckDBDataChunk.create(types, CHUNK_ROWS);
      this.chunk.reset();
      this.chunk.rowCount = n;
      this.chunk.setColumns(values);
      this.appender.appendDataChunk(this.chunk);
    }
  }

  async commit(): Promise<void> {
    this.appender.closeSync();
    const tmp = temporaryPathFor(this.finalPath);
    try {
      await this.connection.run(`COPY ${this.table} TO ${sqlString(tmp)} (FORMAT parquet)`);
      await rename(tmp, this.finalPath);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    } finally {
      await this.dropTable();
    }
  }

  async abort(): Promise<void> {
    try {
      this.appender.closeSync();
    } catch {
      /* already closed */
    }
    await this.dropTable();
  }

  private async dropTable(): Promise<void> {
    await this.connection.run(`DROP TABLE IF EXISTS ${this.table}`).catch(() => undefined);
    this.connection.closeSync();
  }
}

export function openPartWriter(
  finalPath: string,
  format: BatchFormat,
  columns: readonly OutputColumn[],
): Promise<PartWriter> {
  return format === 'parquet'
    ? ParquetPartWriter.open(finalPath, columns)
    : TextPartWriter.open(finalPath, format, columns);
}
