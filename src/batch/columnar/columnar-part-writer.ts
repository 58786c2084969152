import { rename, rm } from 'node:fs/promises';
import type { DuckDBAppender, DuckDBConnection, DuckDBDataChunk } from '@duckdb/node-api';
import type { BatchFormat, ParquetCompression } from '../io/batch-format.ts';
import { rowRangeSql } from './column-batch.ts';
import type { ColumnarPlan } from './columnar-plan.ts';
import { duckdb, duckdbBindings, duckdbConnection, sqlIdentifier, sqlString } from '../io/duckdb-engine.ts';
import { temporaryPathFor } from '../io/part-writer.ts';

const CHUNK_ROWS = 2048;
let tableCounter = 0;

/** What becomes of each input row in the output. */
export const RowOutcome = { Scored: 0, NullPrediction: 1, Skipped: 2 } as const;

/** How a part file is written: its format, and for Parquet the compression (parts merged later are uncompressed). */
export interface PartWriteOptions {
  format: BatchFormat;
  compression: ParquetCompression;
}

/** DuckDB COPY options writing `options.format`. */
export function copyOptions(options: PartWriteOptions): string {
  switch (options.format) {
    case 'parquet':
      return `FORMAT parquet, COMPRESSION ${options.compression}`;
    case 'csv':
      return 'FORMAT csv, HEADER true';
    case 'jsonl':
      return 'FORMAT json';
  }
}

/**
 * A part (Parquet, CSV or JSONL) written without row objects: the prediction columns go into a DuckDB table as typed vectors, and
 * one COPY joins them by position with the kept input columns read again from the input file (all in C++).
 */
export class ColumnarPartWriter {
  // One chunk reused for every append: a chunk's native memory is freed only when V8 collects its wrapper.
  private readonly chunk: DuckDBDataChunk;

  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly appender: DuckDBAppender,
    private readonly table: string,
    private readonly plan: ColumnarPlan,
    private readonly options: PartWriteOptions,
  ) {
    this.chunk = duckdb.DuckDBDataChunk.create(
      Array.from({ length: plan.predictions.length + 1 }, () => duckdb.DOUBLE),
      CHUNK_ROWS,
    );
  }

  /** `connect`: where the prediction table lives (default: the process's DuckDB). */
  static async open(
    plan: ColumnarPlan,
    options: PartWriteOptions,
    connect: () => Promise<DuckDBConnection> = duckdbConnection,
  ): Promise<ColumnarPartWriter> {
    const connection = await connect();
    const table = `caliper_predictions_${process.pid}_${tableCounter++}`;
    const columns = ['__caliper_outcome', ...plan.predictions.map((_, p) => `__caliper_p${p}`)];
    await connection.run(`CREATE TABLE ${table} (${columns.map((c) => `${c} DOUBLE`).join(', ')})`);
    return new ColumnarPartWriter(connection, await connection.createAppender(table), table, plan, options);
  }

  /**
   * Appends rows [0, rows) of the prediction columns; NullPrediction and Skipped rows get nulls. Each column of each
   * chunk goes into DuckDB as one copy of its bytes (and one of its validity mask where a row is not scored).
   */
  append(outcome: Uint8Array, predictions: readonly Float64Array[], rows: number): void {
    const columns = [Float64Array.from(outcome.subarray(0, rows)), ...predictions];
    const mask = new BigUint64Array(CHUNK_ROWS / 64);
    for (let start = 0; start < rows; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows - start);
      this.chunk.reset();
      this.chunk.rowCount = n;
      let unscored = false;
      mask.fill(~0n);
      for (let r = 0; r < n; r++) {
        if (outcome[start + r] !== RowOutcome.Scored) {
          mask[r >> 6]! &= ~(1n << BigInt(r & 63));
          unscored = true;
        }
      }
      columns.forEach((values, c) => {
        const vector = duckdbBindings.data_chunk_get_vector(this.chunk.chunk, c);
        const bytes = Float64Array.BYTES_PER_ELEMENT;
        duckdbBindings.copy_data_to_vector(
          vector,
          0,
          values.buffer as ArrayBuffer,
          values.byteOffset + start * bytes,
          n * bytes,
        );
        if (c > 0 && unscored) {
          duckdbBindings.vector_ensure_validity_writable(vector);
          duckdbBindings.copy_data_to_vector_validity(vector, 0, mask.buffer, mask.byteOffset, mask.byteLength);
        }
      });
      this.appender.appendDataChunk(this.chunk);
    }
  }

  /** Writes the part file for input rows [start, end) (the rows appended, in order) and renames it into place. */
  async commit(finalPath: string, start: number, end: number): Promise<void> {
    this.appender.closeSync();
    const tmp = temporaryPathFor(finalPath);
    const predictions = this.plan.predictions.map(
      (p, i) => `CAST(p.__caliper_p${i} AS ${p.boolean ? 'BOOLEAN' : 'DOUBLE'}) AS ${sqlIdentifier(p.name)}`,
    );
    const select = [...this.plan.keptSql, ...predictions].join(', ');
    try {
      await this.connection.run(
        `COPY (SELECT ${select} FROM (SELECT * FROM ${rowRangeSql(this.plan.source, start, end)}) i POSITIONAL JOIN ${this.table} p WHERE p.__caliper_outcome <> ${RowOutcome.Skipped}) TO ${sqlString(tmp)} (${copyOptions(this.options)})`,
      );
      await rename(tmp, finalPath);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    } finally {
      await this.drop();
    }
  }

  /**
   * Writes only the appended prediction columns (outcome first) as an uncompressed Parquet file and renames it into
   * place: a prediction part, joined by position with its input rows when the job's output is assembled.
   */
  async commitPredictions(finalPath: string): Promise<void> {
    this.appender.closeSync();
    const tmp = temporaryPathFor(finalPath);
    try {
      await this.connection.run(`COPY ${this.table} TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION uncompressed)`);
      await rename(tmp, finalPath);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    } finally {
      await this.drop();
    }
  }

  async abort(): Promise<void> {
    try {
      this.appender.closeSync();
    } catch {
      /* already closed */
    }
    await this.drop();
  }

  private async drop(): Promise<void> {
    await this.connection.run(`DROP TABLE IF EXISTS ${this.table}`).catch(() => undefined);
    this.connection.closeSync();
  }
}
