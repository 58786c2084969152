/** Rows as read from an input file: column name → plain JS value (null for missing). */
export type SourceRow = Record<string, unknown>;

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
}

/** Rows [start, end) of one file, read in order with bounded memory. */
export interface RowSource {
  /** Known after open(); JSONL learns its columns from the first rows. */
  readonly columns: SourceColumn[];
  /** Up to maxRows next rows, or null at the end of the range. */
  next(maxRows: number): Promise<SourceBatch | null>;
  close(): Promise<void>;
}

export interface RowRange { start: number; end: number }
