import type { DuckDBDataChunk, DuckDBType } from '@duckdb/node-api';
import { CaliperError } from '../../errors.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import { copyDoubles, doubleOrNaN, type ColumnBatch } from './column-batch.ts';
import { rowsForRowPath } from './column-validator.ts';
import { fetchRows, scoreColumnBatch } from './columnar-part.ts';
import { ColumnarPartWriter, RowOutcome } from './columnar-part-writer.ts';
import { columnarPlan, type ColumnarPlan } from './columnar-plan.ts';
import {
  duckdbConnection,
  releaseConsumedChunks,
  sqlIdentifier,
  sqlString,
  writerConnection,
} from '../io/duckdb-engine.ts';
import {
  type CsvDialect,
  csvDialect,
  needsStaging,
  PARSE_ERROR_COLUMN,
  scanSql,
  sniffedReaderSql,
  stageInput,
} from '../io/input-scan.ts';
import type { OutputLayout, PartMeta } from '../io/output-layout.ts';
import { ForwardRowReader, isReadEndedEarly } from '../io/forward-row-reader.ts';
import { existsSync } from 'node:fs';
import { phase, steppedPhase } from '../phase-timer.ts';

/**
 * The joined columnar path, for a job whose output is assembled at the end (one file, or --partition-by folders):
 * each input file is read ONCE in order by its own DuckDB reader (read_parquet, read_csv, read_json; CSV and JSONL are
 * not staged), only the request fields cross into JavaScript, and each part commits just its predictions (outcome and
 * prediction columns, a small Parquet file, with its meta) — enough to resume exactly. At the end one DuckDB COPY reads
 * every input file again beside its prediction parts (POSITIONAL JOIN, streamed in lockstep) and writes the output:
 * the kept columns go from reader to writer inside DuckDB, never as row objects, and nothing is written twice.
 * A CSV or JSONL file that DuckDB's fast reader refuses (a value past the type sniffer's sample, a ragged row, a JSONL
 * line that is no object) is staged once through the tolerant readers and scored from that copy instead.
 */

/** What one input file is read through on the joined path, and its compiled plan. */
export interface JoinedSource {
  /** A DuckDB table expression reading the file in order: its own reader, or its staged copy. */
  from: string;
  plan: ColumnarPlan;
  /** Parquet (the input, or a staged copy): rows the row path takes are fetched by row number, not streamed along. */
  rowNumbers: boolean;
  /** An uncompressed CSV input read as it lies, through its sniffed dialect (the one-pass COPY may score it in halves). */
  csv?: { path: string; dialect: CsvDialect };
  /** A plain Parquet input read as it lies (the one-pass COPY may score it in two halves of whole row groups). */
  parquet?: { path: string };
}

async function schemaOf(from: string): Promise<{ names: string[]; types: DuckDBType[] }> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.run(`SELECT * FROM ${from} LIMIT 0`);
    return { names: result.columnNames(), types: result.columnTypes() };
  } finally {
    connection.closeSync();
  }
}

/**
 * The joined source of input file `fileIndex`: its own reader when DuckDB reads it as is, else (CSV, JSONL) its staged
 * copy (made now, or kept from an earlier run of the job); undefined where the model or file needs the row path.
 */
export async function joinedSourceFor(
  version: ModelVersion,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
): Promise<JoinedSource | undefined> {
  const file = spec.inputs[fileIndex]!;
  const source = layout.scanSource(fileIndex);
  const staged = needsStaging(file) && existsSync(layout.stagedPath(fileIndex));
  if (!staged) {
    const from = await sniffedReaderSql(file);
    let schema: { names: string[]; types: DuckDBType[] } | undefined;
    try {
      schema = await schemaOf(from);
    } catch (error) {
      if (!needsStaging(file)) throw error;
    }
    if (schema) {
      const plan = columnarPlan(version, spec, { ...source, text: needsStaging(file) }, schema);
      if (typeof plan === 'string') return undefined;
      const dialect = await csvDialect(file);
      const plain = dialect !== undefined && !file.hive && file.path.toLowerCase().endsWith('.csv');
      const parquet = file.format === 'parquet' && !file.hive ? { parquet: { path: file.path } } : {};
      return {
        from,
        plan,
        rowNumbers: !needsStaging(file),
        ...(plain ? { csv: { path: file.path, dialect } } : {}),
        ...parquet,
      };
    }
    await stageInput(file, layout.stagedPath(fileIndex));
  }
  const from = scanSql(source);
  const plan = columnarPlan(version, spec, source, await schemaOf(from));
  return typeof plan === 'string' ? undefined : { from, plan, rowNumbers: true };
}

/** Consumed data chunks (2048 rows each) between collections of their native memory (see releaseConsumedChunks). */
const CHUNKS_PER_COLLECTION = 128;

/** A read error from the file's own reader (not from scoring): the file is staged and scored again from the copy. */
class ReaderRefused extends Error {}

/**
 * Scores input file `fileIndex` from row `start` to its end into prediction parts of spec.partRows rows, each committed
 * (meta, then file) before the next is read. Returns the joined source used (a text file the fast reader refused
 * midway is staged, its parts are discarded and it is scored again from the copy).
 */
export async function scoreToPredictionParts(
  version: ModelVersion,
  joined: JoinedSource,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
  start: number,
  onBatch: (rows: number, errors: number) => void,
): Promise<JoinedSource> {
  try {
    await streamParts(version, joined, spec, layout, fileIndex, start, onBatch);
    return joined;
  } catch (error) {
    const file = spec.inputs[fileIndex]!;
    if (!(error instanceof ReaderRefused) || !needsStaging(file) || existsSync(layout.stagedPath(fileIndex)))
      throw error instanceof ReaderRefused ? error.cause : error;
    return await rescoreFromStagedCopy(version, spec, layout, fileIndex, onBatch);
  }
}

/**
 * Drops input file `fileIndex`'s prediction parts, stages the file through the tolerant readers and scores it again
 * from that copy; returns the staged source the output is then assembled from. Throws CALIPER_INVALID_INPUT when the
 * staged copy no longer fits the columnar scorer.
 */
async function rescoreFromStagedCopy(
  version: ModelVersion,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
  onBatch: (rows: number, errors: number) => void,
): Promise<JoinedSource> {
  const file = spec.inputs[fileIndex]!;
  layout.removeParts(fileIndex);
  await stageInput(file, layout.stagedPath(fileIndex));
  const staged = await joinedSourceFor(version, spec, layout, fileIndex);
  if (!staged)
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${file.path}: read as text after a value the type sniffer did not expect, the file no longer fits the columnar scorer; run again with --row-path`,
    );
  await streamParts(version, staged, spec, layout, fileIndex, 0, onBatch);
  return staged;
}

/**
 * After the output could not be assembled: every CSV or JSONL input read by its own reader is staged through the
 * tolerant readers and scored again from the copy (DuckDB's streamed reads can end early, without an error, at a value
 * the type sniffer did not expect; the assembling COPY then meets that value). Returns false when no file was read
 * that way (the failure has another cause).
 */
export async function rescoreFromStagedCopies(
  version: ModelVersion,
  joined: JoinedSource[],
  spec: BatchJobSpec,
  layout: OutputLayout,
  onBatch: (rows: number, errors: number) => void,
): Promise<boolean> {
  let any = false;
  for (let fileIndex = 0; fileIndex < joined.length; fileIndex++) {
    const file = spec.inputs[fileIndex]!;
    if (!needsStaging(file) || existsSync(layout.stagedPath(fileIndex))) continue;
    any = true;
    joined[fileIndex] = await rescoreFromStagedCopy(version, spec, layout, fileIndex, onBatch);
  }
  return any;
}

async function streamParts(
  version: ModelVersion,
  joined: JoinedSource,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
  start: number,
  onBatch: (rows: number, errors: number) => void,
): Promise<void> {
  const { plan, from, rowNumbers } = joined;
  const file = spec.inputs[fileIndex]!;
  const fieldCount = plan.fields.length + (plan.parseErrors ? 1 : 0);
  // NaN for null, so the field vectors need no validity checks; the row path reads nulls as nulls from the row objects.
  const columns = plan.fields.map((f) => doubleOrNaN(f.sql));
  if (plan.parseErrors) columns.push(`CAST(${sqlIdentifier(PARSE_ERROR_COLUMN)} IS NOT NULL AS DOUBLE)`);
  const connection = await duckdbConnection();
  let committing: Promise<void> | undefined;
  // A text file has no row numbers: the whole rows the row path needs come from a second, forward-only read, opened
  // at the first such row (a clean file's other columns never cross into JavaScript).
  const wholeRows = rowNumbers ? undefined : new ForwardRowReader(from, start);
  try {
    const result = await connection
      .stream(`SELECT ${columns.join(', ')} FROM ${from}${start > 0 ? ` OFFSET ${start}` : ''}`)
      .catch((error: unknown) => {
        throw new ReaderRefused('reader refused', { cause: error });
      });
    const partRows = spec.partRows;
    const capacity = Math.min(partRows, 1 << 20);
    let values = Array.from({ length: fieldCount }, () => new Float64Array(capacity));
    let marked = new Uint8Array(capacity);
    let partStart = start;
    let fill = 0;

    const flush = (): Promise<void> => phase('score part', flushPart);
    const flushPart = async (): Promise<void> => {
      const batch: ColumnBatch = { firstRow: partStart, rows: fill, values: values.map((v) => v.subarray(0, fill)) };
      const scored = await scoreColumnBatch(
        version,
        plan,
        spec,
        file.path,
        batch,
        marked.subarray(0, fill),
        wholeRows
          ? (indices) =>
              wholeRows.rowsAt(indices.map((i) => batch.firstRow + i)).catch((error: unknown) => {
                throw isReadEndedEarly(error) ? new ReaderRefused('reader refused', { cause: error }) : error;
              })
          : (indices) => fetchRows(plan, batch.firstRow, indices),
        onBatch,
      );
      // Beside the open read, in DuckDB's second instance (see writerConnection).
      const writer = await ColumnarPartWriter.open(plan, layout.partWriteOptions(), writerConnection);
      try {
        writer.append(scored.outcome, scored.predictions, fill);
      } catch (error) {
        await writer.abort();
        throw error;
      }
      const skipped = spec.onError === 'skip' ? scored.errors.length : 0;
      const meta: PartMeta = {
        fileIndex,
        start: partStart,
        inputRows: fill,
        outputRows: fill - skipped,
        errors: scored.errors,
      };
      layout.writeMeta(meta);
      // DuckDB's writer instance writes this part while the next one is read and scored: one commit in flight at most
      // (memory stays flat), parts committed in order, so a kill leaves only whole parts from the file's first row.
      await committing;
      const path = layout.partPath(fileIndex, partStart);
      committing = phase('write predictions', () => writer.commitPredictions(path));
      committing.catch(() => undefined); // awaited before the next part's commit and at the end
      partStart += fill;
      fill = 0;
      marked.fill(0);
    };

    let wroteAny = false;
    let chunks = 0;
    // The streamed read's share (waiting for each chunk of field columns), printed once when profiling.
    const reading = steppedPhase('read fields (streamed)');
    for (;;) {
      let chunk: DuckDBDataChunk | null;
      try {
        chunk = await reading.time(() => result.fetchChunk());
      } catch (error) {
        throw new ReaderRefused('reader refused', { cause: error });
      }
      if (!chunk || chunk.rowCount === 0) break;
      if (++chunks % CHUNKS_PER_COLLECTION === 0) releaseConsumedChunks();
      const n = chunk.rowCount;
      let taken = 0;
      while (taken < n) {
        const take = Math.min(n - taken, partRows - fill);
        if (fill + take > values[0]!.length) {
          const grown = Math.max(values[0]!.length * 2, fill + take);
          values = values.map((old) => {
            const next = new Float64Array(grown);
            next.set(old.subarray(0, fill));
            return next;
          });
          const nextMarked = new Uint8Array(grown);
          nextMarked.set(marked.subarray(0, fill));
          marked = nextMarked;
        }
        for (let c = 0; c < fieldCount; c++) copyDoubles(chunk, c, taken, take, values[c]!, fill);
        const view: ColumnBatch = {
          firstRow: partStart + fill,
          rows: take,
          values: values.map((v) => v.subarray(fill, fill + take)),
        };
        marked.set(rowsForRowPath(plan, view), fill);
        fill += take;
        taken += take;
        if (fill === partRows) {
          await flush();
          wroteAny = true;
        }
      }
    }
    reading.end();
    // The last, short part; an empty file still gets its (empty) first part, so the job knows the file is done.
    if (fill > 0 || (!wroteAny && start === 0)) await flush();
    await committing;
  } finally {
    await committing?.catch(() => undefined);
    wholeRows?.close();
    connection.closeSync();
  }
}

/**
 * The SELECT that assembles the job's output from every input file and its committed prediction parts, in input
 * order; undefined when no file has a row (the caller writes the empty output).
 */
export function joinedOutputSql(
  sources: readonly JoinedSource[],
  layout: OutputLayout,
  parts: readonly PartMeta[],
): string | undefined {
  const selects = sources.flatMap((joined, fileIndex) => {
    const mine = parts.filter((p) => p.fileIndex === fileIndex && p.inputRows > 0);
    if (mine.length === 0) return [];
    const { plan } = joined;
    const predictions = plan.predictions.map(
      (p, i) => `CAST(p.__caliper_p${i} AS ${p.boolean ? 'BOOLEAN' : 'DOUBLE'}) AS ${sqlIdentifier(p.name)}`,
    );
    const files = mine.map((p) => sqlString(layout.partPath(p.fileIndex, p.start))).join(', ');
    // An input row without its prediction stops the COPY (rows out of step must fail loudly, never be written with
    // empty predictions or dropped). The input side stays a bare scan: DuckDB then streams both sides in lockstep
    // (a positional scan); a subquery there would make it buffer one side whole, and memory grow with the input.
    const inStep = `CASE WHEN p.__caliper_outcome IS NULL THEN error(${sqlString(`${joined.from}: the input's rows and its scored parts are out of step`)}) ELSE p.__caliper_outcome <> ${RowOutcome.Skipped} END`;
    return [
      `SELECT ${[...plan.keptSql, ...predictions].join(', ')} FROM ${joined.from} i POSITIONAL JOIN read_parquet([${files}]) p WHERE ${inStep}`,
    ];
  });
  return selects.length === 0 ? undefined : selects.join(' UNION ALL ');
}
