import type { DuckDBConnection, DuckDBDataChunk, DuckDBResult, DuckDBType } from '@duckdb/node-api';
import { duckdbConnection } from './duckdb-engine.ts';
import { sourceRowsOf } from './parquet-reader.ts';
import type { SourceRow } from './source-row.ts';

/** Rows as the row path reads them, with the columns (names, DuckDB types) they were read with. */
export interface RowsWithSchema {
  rows: SourceRow[];
  schema: { names: string[]; types: DuckDBType[] };
}

/** Thrown when the read ends (or fails) before a row asked for: the file's reader stopped early. Internal to batch. */
class ReadEndedEarly extends Error {}

/** True for the error rowsAt throws when the file's reader stopped before a row asked for (a signal, not a user error). */
export function isReadEndedEarly(error: unknown): boolean {
  return error instanceof ReadEndedEarly;
}

/**
 * Whole rows of a file that has no row numbers (CSV, JSONL through their own readers), fetched by row number as a
 * scorer needs them: a second read of `SELECT * FROM from`, opened at the first row asked for and only moving forward,
 * so a file whose rows all pass the columnar checks is never read whole into JavaScript, and one with bad rows is read
 * a second time at most once, in DuckDB.
 */
export class ForwardRowReader {
  private connection: DuckDBConnection | undefined;
  private result: DuckDBResult | undefined;
  private schema: RowsWithSchema['schema'] = { names: [], types: [] };
  private chunk: DuckDBDataChunk | null = null;
  /** File row number of the current chunk's first row, and of the row after it. */
  private chunkStart: number;
  private nextStart: number;

  /** `from`: a DuckDB table expression reading the file in order; `start`: the file row number its reads begin at. */
  constructor(
    private readonly from: string,
    private readonly start: number,
  ) {
    this.chunkStart = start;
    this.nextStart = start;
  }

  /**
   * The rows at file row numbers `rows` (ascending, none before a row asked for earlier), in that order. Throws
   * ReadEndedEarly when the read fails or ends before one of them.
   */
  async rowsAt(rows: readonly number[]): Promise<RowsWithSchema> {
    const out: SourceRow[] = [];
    let i = 0;
    while (i < rows.length) {
      const row = rows[i]!;
      if (row < this.chunkStart) throw new Error(`forward row reader: row ${row} was already passed`);
      if (this.chunk && row < this.nextStart) {
        const pick: number[] = [];
        while (i < rows.length && rows[i]! < this.nextStart) pick.push(rows[i++]! - this.chunkStart);
        out.push(...sourceRowsOf(this.chunk, this.schema.names, this.schema.types, pick));
        continue;
      }
      const chunk = await this.fetch();
      if (!chunk || chunk.rowCount === 0) throw new ReadEndedEarly(`the read ended before row ${row}`);
      this.chunk = chunk;
      this.chunkStart = this.nextStart;
      this.nextStart += chunk.rowCount;
    }
    return { rows: out, schema: this.schema };
  }

  private async fetch(): Promise<DuckDBDataChunk | null> {
    try {
      if (!this.result) {
        this.connection = await duckdbConnection();
        this.result = await this.connection.stream(
          `SELECT * FROM ${this.from}${this.start > 0 ? ` OFFSET ${this.start}` : ''}`,
        );
        this.schema = { names: this.result.columnNames(), types: this.result.columnTypes() };
      }
      return await this.result.fetchChunk();
    } catch (error) {
      throw new ReadEndedEarly('the read failed', { cause: error });
    }
  }

  close(): void {
    this.connection?.closeSync();
    this.connection = undefined;
    this.result = undefined;
    this.chunk = null;
  }
}
