import { rename, rm } from 'node:fs/promises';
import type {
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBTableFunction,
  DuckDBTableFunctionBindInfo,
} from '@duckdb/node-api';
import type { BatchFormat, ParquetCompression } from '../io/batch-format.ts';
import { rowRangeSql } from './column-batch.ts';
import type { ColumnarPlan } from './columnar-plan.ts';
import { duckdb, duckdbBindings, duckdbConnection, sqlIdentifier, sqlString } from '../io/duckdb-engine.ts';
import { temporaryPathFor } from '../io/part-writer.ts';

/** Rows per chunk the prediction scan hands DuckDB (its standard vector size). */
const CHUNK_ROWS = 2048;

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

/** A part's prediction columns while its COPY runs: outcome per row, then one column per prediction field. */
interface ScannedPart {
  rows: number;
  outcome: Uint8Array;
  /** The outcome as DOUBLE (the part file's first column), then the prediction fields. */
  columns: Float64Array[];
}

/** The table function DuckDB scans a part's predictions through, and the parts it can scan now (by id). */
const PREDICTION_SCAN = 'caliper_prediction_part';
const scanned = new Map<number, ScannedPart>();
let partCounter = 0;
/**
 * Per DuckDB instance (by its connect function): the scan is registered once, on a connection kept open; both are held
 * here for the process's life, so that neither wrapper's finalizer can release them while parts are written.
 */
const registered = new Map<
  () => Promise<DuckDBConnection>,
  Promise<{ connection: DuckDBConnection; scan: DuckDBTableFunction }>
>();

/**
 * Fills one DuckDB chunk (up to 2048 rows from `next`) with a part's columns: each column one copy of its bytes, and
 * for the prediction columns one copy of a validity mask where a row of the chunk is not scored (NullPrediction or
 * Skipped: null predictions). Returns the rows written (0: the scan is done).
 */
function fillChunk(part: ScannedPart, next: number, chunk: DuckDBDataChunk): number {
  const n = Math.min(CHUNK_ROWS, part.rows - next);
  chunk.rowCount = Math.max(n, 0);
  if (n <= 0) return 0;
  let mask: BigUint64Array<ArrayBuffer> | undefined;
  for (let r = 0; r < n; r++) {
    if (part.outcome[next + r] !== RowOutcome.Scored) {
      mask ??= new BigUint64Array(CHUNK_ROWS / 64).fill(~0n);
      mask[r >> 6]! &= ~(1n << BigInt(r & 63));
    }
  }
  const bytes = Float64Array.BYTES_PER_ELEMENT;
  part.columns.forEach((values, c) => {
    const vector = duckdbBindings.data_chunk_get_vector(chunk.chunk, c);
    duckdbBindings.copy_data_to_vector(
      vector,
      0,
      values.buffer as ArrayBuffer,
      values.byteOffset + next * bytes,
      n * bytes,
    );
    if (c > 0 && mask) {
      duckdbBindings.vector_ensure_validity_writable(vector);
      duckdbBindings.copy_data_to_vector_validity(vector, 0, mask.buffer, mask.byteOffset, mask.byteLength);
    }
  });
  return n;
}

/** Registers the prediction scan on the DuckDB instance `connect` opens connections to (once per instance). */
async function registerPredictionScan(connect: () => Promise<DuckDBConnection>): Promise<void> {
  let done = registered.get(connect);
  if (!done) {
    done = connect().then((connection) => {
      const scan = duckdb.DuckDBTableFunction.create({
        name: PREDICTION_SCAN,
        parameterTypes: [duckdb.BIGINT],
        bindFunction: (info: DuckDBTableFunctionBindInfo) => {
          const id = Number(info.getParameter(0));
          const part = scanned.get(id);
          if (!part) {
            info.setError(`${PREDICTION_SCAN}(${id}): no such part`);
            return;
          }
          info.addResultColumn('__caliper_outcome', duckdb.DOUBLE);
          for (let p = 1; p < part.columns.length; p++) info.addResultColumn(`__caliper_p${p - 1}`, duckdb.DOUBLE);
          info.setBindData(part);
        },
        initFunction: (info) => info.setInitData({ next: 0 }),
        mainFunction: (info, output) => {
          const state = info.initData as { next: number };
          state.next += fillChunk(info.bindData as ScannedPart, state.next, output);
        },
      });
      connection.registerTableFunction(scan);
      return { connection, scan };
    });
    done.catch(() => registered.delete(connect));
    registered.set(connect, done);
  }
  await done;
}

/**
 * A part (Parquet, CSV or JSONL) written without row objects: DuckDB scans the prediction columns straight from their
 * typed arrays (a table function, a copy of each column's bytes per 2048-row chunk), and one COPY writes them alone
 * (a prediction part) or joined by position with the kept input columns read again from the input file (all in C++).
 * No table is created, filled or dropped per part.
 */
export class ColumnarPartWriter {
  private part: ScannedPart | undefined;

  private constructor(
    private readonly connect: () => Promise<DuckDBConnection>,
    private readonly plan: ColumnarPlan,
    private readonly options: PartWriteOptions,
  ) {}

  /** `connect`: the DuckDB instance that writes the part (default: the process's DuckDB). */
  static async open(
    plan: ColumnarPlan,
    options: PartWriteOptions,
    connect: () => Promise<DuckDBConnection> = duckdbConnection,
  ): Promise<ColumnarPartWriter> {
    await registerPredictionScan(connect);
    return new ColumnarPartWriter(connect, plan, options);
  }

  /**
   * Takes rows [0, rows) of the outcome and prediction columns (NullPrediction and Skipped rows are written with null
   * predictions). The arrays are read when the part is committed, so they must not change until then.
   */
  append(outcome: Uint8Array, predictions: readonly Float64Array[], rows: number): void {
    if (predictions.length !== this.plan.predictions.length)
      throw new Error(
        `part writer: ${predictions.length} prediction columns for ${this.plan.predictions.length} fields`,
      );
    const asDouble = new Float64Array(rows);
    for (let r = 0; r < rows; r++) asDouble[r] = outcome[r]!;
    this.part = {
      rows,
      outcome: outcome.subarray(0, rows),
      columns: [asDouble, ...predictions.map((p) => p.subarray(0, rows))],
    };
  }

  /** Writes the part file for input rows [start, end) (the rows appended, in order) and renames it into place. */
  async commit(finalPath: string, start: number, end: number): Promise<void> {
    const predictions = this.plan.predictions.map(
      (p, i) => `CAST(p.__caliper_p${i} AS ${p.boolean ? 'BOOLEAN' : 'DOUBLE'}) AS ${sqlIdentifier(p.name)}`,
    );
    const select = [...this.plan.keptSql, ...predictions].join(', ');
    await this.write(
      finalPath,
      (scan) =>
        `COPY (SELECT ${select} FROM (SELECT * FROM ${rowRangeSql(this.plan.source, start, end)}) i POSITIONAL JOIN ${scan} p WHERE p.__caliper_outcome <> ${RowOutcome.Skipped}) TO`,
      copyOptions(this.options),
    );
  }

  /**
   * Writes only the appended prediction columns (outcome first) as an uncompressed Parquet file and renames it into
   * place: a prediction part, joined by position with its input rows when the job's output is assembled.
   */
  async commitPredictions(finalPath: string): Promise<void> {
    await this.write(
      finalPath,
      (scan) => `COPY (SELECT * FROM ${scan}) TO`,
      'FORMAT parquet, COMPRESSION uncompressed',
    );
  }

  async abort(): Promise<void> {
    this.part = undefined;
  }

  /** Runs `copy(scan) 'tmp' (options)` with the appended columns as `scan`, then renames the file into place. */
  private write(finalPath: string, copy: (scan: string) => string, options: string): Promise<void> {
    // The process is exiting (stopPartWrites): no COPY starts, and the part stays uncommitted (its meta without a file
    // is an uncommitted part, redone by a resumed run).
    if (stopping) return new Promise<never>(() => undefined);
    // A part nothing was appended to (an empty file's first part) is written with its columns and no rows.
    const part = this.part ?? {
      rows: 0,
      outcome: new Uint8Array(0),
      columns: [new Float64Array(0), ...this.plan.predictions.map(() => new Float64Array(0))],
    };
    this.part = undefined;
    const id = partCounter++;
    scanned.set(id, part);
    const writing = (async () => {
      const tmp = temporaryPathFor(finalPath);
      const connection = await this.connect();
      try {
        await connection.run(`${copy(`${PREDICTION_SCAN}(${id})`)} ${sqlString(tmp)} (${options})`);
        await rename(tmp, finalPath);
      } catch (error) {
        await rm(tmp, { force: true });
        throw error;
      } finally {
        scanned.delete(id);
        connection.closeSync();
      }
    })();
    inFlight.add(writing);
    const untrack = (): void => {
      inFlight.delete(writing);
    };
    writing.then(untrack, untrack);
    return writing;
  }
}

/** Part writes whose COPY is running (it needs this thread for the prediction scan's callbacks). */
const inFlight = new Set<Promise<void>>();
let stopping = false;

/**
 * For a process about to exit mid-job (Ctrl-C): lets the part writes in flight finish and starts no other; resolves
 * when none is running. Exiting while one runs would hang: DuckDB waits for its running query as the process shuts
 * down, and that query waits for a prediction-scan callback this thread no longer runs.
 */
export async function stopPartWrites(): Promise<void> {
  stopping = true;
  await Promise.allSettled([...inFlight]);
}
