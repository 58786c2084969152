/** Rows as read from an input file: column name → plain JS value (null for missing). */
export type SourceRow = Record<string, unknown>;

/**
 * Where a Parquet row keeps the reader's own values of the columns whose plain JS value is not exact (decimals,
 * 64-bit integers, timestamps, dates, lists, structs, …): a kept column is written from them with its own type.
 */
export const exactValues: unique symbol = Symbol('caliper.exactValues');

/** The value of `column` exactly as the reader read it, when the plain value in the row is not exact. */
export function exactValueOf(row: SourceRow, column: string): unknown {
  const exact = (row as { [exactValues]?: Record<string, unknown> })[exactValues];
  return exact === undefined ? undefined : exact[column];
}

/** One run of consecutive rows from one input file; `firstRow` is the 0-based index of rows[0] in that file. */
export interface SourceBatch {
  rows: SourceRow[];
  firstRow: number;
  /** Per-row parse errors (e.g. a JSONL line that is not JSON), by index into rows. */
  parseErrors?: Map<number, string>;
}

/** The scalar kind of a column, as far as the reader knows it; decides the output column type. */
export type ColumnKind = 'double' | 'integer' | 'boolean' | 'string' | 'json';

export interface SourceColumn {
  name: string;
  /** The output type this column gets when kept (a reader's best knowledge; CSV infers it from the first rows). */
  kind: ColumnKind | undefined;
  /** Values are untyped text (CSV): request fields are coerced to their declared types. */
  text?: boolean;
  /** The column's exact SQL type (Parquet): a kept column is written with it, value for value. */
  sqlType?: string;
}

/** Rows [start, end) of one file, read in order with bounded memory. */
export interface RowSource {
  /** Known after open(); JSONL learns its columns from the first rows. */
  readonly columns: SourceColumn[];
  /** Up to maxRows next rows, or null at the end of the range. */
  next(maxRows: number): Promise<SourceBatch | null>;
  close(): Promise<void>;
}

export interface RowRange {
  start: number;
  end: number;
}
