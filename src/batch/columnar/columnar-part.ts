import type { ModelVersion } from '../../lifecycle/model-version.ts';
import type { Prediction } from '../../pipeline/postprocess.ts';
import { runBuiltTensors } from '../../pipeline/tensor-infer.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import { ChunkScorer, firstBadRowError, type RowError } from '../chunk-scorer.ts';
import { readColumnBatch, type ColumnBatch } from './column-batch.ts';
import { buildTensors } from './column-preprocessor.ts';
import { writePredictions } from './column-postprocessor.ts';
import { rowsForRowPath } from './column-validator.ts';
import { ColumnarPartWriter, RowOutcome } from './columnar-part-writer.ts';
import { columnarPlan, type ColumnarPlan, type ParquetSchema } from './columnar-plan.ts';
import { duckdbConnection } from '../io/duckdb-engine.ts';
import { phase, phaseSync } from '../phase-timer.ts';
import { FieldMapping } from '../field-mapping.ts';
import { scanSql, type ScanSource } from '../io/input-scan.ts';
import type { OutputLayout, PartMeta } from '../io/output-layout.ts';
import { sourceColumnsOf, sourceRowsOf, withParseErrors } from '../io/parquet-reader.ts';
import type { SourceRow } from '../io/source-row.ts';

/** Row numbers per IN (...) list when fetching marked rows as row objects. */
const FETCH_GROUP = 4096;

async function parquetSchema(source: ScanSource): Promise<ParquetSchema> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.run(`SELECT * FROM ${scanSql(source)} LIMIT 0`);
    return { names: result.columnNames(), types: result.columnTypes() };
  } finally {
    connection.closeSync();
  }
}

/** The columnar plan for input file `fileIndex`, or undefined where it keeps the row path. */
export async function columnarPlanFor(
  version: ModelVersion,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
): Promise<ColumnarPlan | undefined> {
  const source = layout.scanSource(fileIndex);
  const plan = columnarPlan(version, spec, source, await parquetSchema(source));
  return typeof plan === 'string' ? undefined : plan;
}

/** The marked rows as the row path reads them (same values, same conversions), in file order. */
export async function fetchRows(
  plan: ColumnarPlan,
  start: number,
  indices: readonly number[],
): Promise<{ rows: SourceRow[]; schema: ParquetSchema }> {
  const connection = await duckdbConnection();
  try {
    const rows: SourceRow[] = [];
    let schema: ParquetSchema = { names: [], types: [] };
    for (let g = 0; g < indices.length; g += FETCH_GROUP) {
      const numbers = indices
        .slice(g, g + FETCH_GROUP)
        .map((i) => start + i)
        .join(', ');
      const result = await connection.run(
        `SELECT * EXCLUDE (file_row_number) FROM ${scanSql(plan.source, true)} WHERE file_row_number IN (${numbers}) ORDER BY file_row_number`,
      );
      schema = { names: result.columnNames(), types: result.columnTypes() };
      for (;;) {
        const chunk = await result.fetchChunk();
        if (!chunk || chunk.rowCount === 0) break;
        rows.push(...sourceRowsOf(chunk, schema.names, schema.types));
      }
    }
    return { rows, schema };
  } finally {
    connection.closeSync();
  }
}

interface RowPathResult {
  predictions: (Prediction | null)[];
  errors: RowError[];
  failed: Uint8Array;
}

/** Scores the marked rows (read as the row path reads them, with their file's columns) exactly as the row path would. */
async function scoreMarkedRows(
  version: ModelVersion,
  plan: ColumnarPlan,
  spec: BatchJobSpec,
  batch: ColumnBatch,
  indices: readonly number[],
  marked: { rows: SourceRow[]; schema: ParquetSchema },
): Promise<RowPathResult> {
  const failed = new Uint8Array(indices.length);
  if (indices.length === 0) return { predictions: [], errors: [], failed };
  const { rows, schema } = marked;
  const columns = sourceColumnsOf(schema.names, schema.types, plan.source.text);
  const scorer = new ChunkScorer(version, new FieldMapping(version.config.inputs, columns, spec.map), 'null');
  const predictions: (Prediction | null)[] = [];
  const errors: RowError[] = [];
  for (let from = 0; from < rows.length; from += spec.batchSize) {
    const block = withParseErrors(rows.slice(from, from + spec.batchSize));
    const scored = await scorer.score({ ...block, firstRow: from });
    predictions.push(...scored.predictions);
    for (const error of scored.errors) {
      failed[error.row] = 1;
      errors.push({ row: batch.firstRow + indices[error.row]!, reason: error.reason });
    }
  }
  return { predictions, errors, failed };
}

/** A column batch scored: each row's outcome, one Float64Array per prediction field, and the row errors. */
export interface ScoredColumns {
  outcome: Uint8Array;
  predictions: Float64Array[];
  errors: RowError[];
}

/**
 * Scores a column batch: validation, preprocess and postprocess over arrays, ONNX Runtime on batches of
 * spec.batchSize; the rows that fail the vectorized checks take the row path (their row objects from `fetchMarked`,
 * in the order of the indices given), so error policies and reasons are the row path's.
 */
export async function scoreColumnBatch(
  version: ModelVersion,
  plan: ColumnarPlan,
  spec: BatchJobSpec,
  file: string,
  batch: ColumnBatch,
  marked: Uint8Array,
  fetchMarked: (indices: readonly number[]) => Promise<{ rows: SourceRow[]; schema: ParquetSchema }>,
  onBatch: (rows: number, errors: number) => void,
): Promise<ScoredColumns> {
  const indices: number[] = [];
  for (let r = 0; r < batch.rows; r++) if (marked[r]) indices.push(r);
  const fromRowPath =
    indices.length === 0
      ? { predictions: [], errors: [], failed: new Uint8Array(0) }
      : await scoreMarkedRows(version, plan, spec, batch, indices, await fetchMarked(indices));
  if (fromRowPath.errors.length > 0 && spec.onError === 'fail') throw firstBadRowError(file, fromRowPath.errors[0]!);

  const outcome = new Uint8Array(batch.rows);
  const failedRow = new Uint8Array(batch.rows);
  indices.forEach((r, k) => {
    if (fromRowPath.failed[k]) failedRow[r] = 1;
  });
  const predictions = plan.predictions.map(() => new Float64Array(batch.rows));
  for (let from = 0; from < batch.rows; from += spec.batchSize) {
    const to = Math.min(batch.rows, from + spec.batchSize);
    const inputs = buildTensors(plan, batch, marked, from, to);
    const result = await runBuiltTensors(version, inputs, to - from, plan.outputNames);
    writePredictions(plan, result.outputs, predictions, from, to - from);
    let errors = 0;
    for (let r = from; r < to; r++) errors += failedRow[r]!;
    onBatch(to - from, errors);
  }
  indices.forEach((r, k) => {
    const prediction = fromRowPath.predictions[k];
    if (!prediction) {
      outcome[r] = spec.onError === 'skip' ? RowOutcome.Skipped : RowOutcome.NullPrediction;
      return;
    }
    plan.predictions.forEach((field, p) => {
      const value = prediction[field.name];
      predictions[p]![r] = typeof value === 'boolean' ? Number(value) : typeof value === 'number' ? value : NaN;
    });
  });
  return { outcome, predictions, errors: fromRowPath.errors };
}

/**
 * Scores input rows [start, end) of one Parquet file column-at-a-time into one part: DuckDB reads typed columns,
 * validation, preprocess and postprocess run over arrays, ONNX Runtime runs batches of spec.batchSize, and the part
 * is written by DuckDB. Rows that fail the vectorized checks take the row path, so error policies and reasons are
 * the row path's. Returns the part's meta, not yet committed.
 */
export async function produceColumnarPart(
  version: ModelVersion,
  plan: ColumnarPlan,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
  start: number,
  end: number,
  expectedRows: number,
  onBatch: (rows: number, errors: number) => void,
): Promise<{ meta: PartMeta; commit(): Promise<void> }> {
  const batch = await phase('read fields', () => readColumnBatch(plan, start, end, expectedRows));
  const marked = rowsForRowPath(plan, batch);
  const { outcome, predictions, errors } = await phase('score', () =>
    scoreColumnBatch(
      version,
      plan,
      spec,
      spec.inputs[fileIndex]!.path,
      batch,
      marked,
      (indices) => fetchRows(plan, batch.firstRow, indices),
      onBatch,
    ),
  );
  const writer = await ColumnarPartWriter.open(plan, layout.partWriteOptions());
  try {
    phaseSync('append predictions', () => writer.append(outcome, predictions, batch.rows));
  } catch (error) {
    await writer.abort();
    throw error;
  }
  const skipped = spec.onError === 'skip' ? errors.length : 0;
  const meta: PartMeta = { fileIndex, start, inputRows: batch.rows, outputRows: batch.rows - skipped, errors };
  return {
    meta,
    commit: async () => {
      layout.writeMeta(meta);
      await phase('part COPY', () => writer.commit(layout.partPath(fileIndex, start), start, start + batch.rows));
    },
  };
}
