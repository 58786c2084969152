import { CaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { Prediction } from '../pipeline/postprocess.ts';
import { runStages, stageContext } from '../pipeline/stage-list.ts';
import type { StageTimings } from '../pipeline/stage-timings.ts';
import type { FieldMapping } from './field-mapping.ts';
import type { SourceBatch, SourceRow } from './io/source-row.ts';

/** A row that could not be scored: its 0-based index in its input file and why. */
export interface RowError {
  row: number;
  reason: string;
}

export type ErrorPolicy = 'skip' | 'null' | 'fail';

/** What --on-error fail stops with, from either scoring path. */
export function firstBadRowError(file: string, first: RowError): CaliperError {
  return new CaliperError(
    'CALIPER_INVALID_INPUT',
    `${file} row ${first.row + 1}: ${first.reason} (--on-error fail stops at the first bad row)`,
  );
}

/** Rows to write (skipped rows already removed) with their predictions (null where the row failed). */
export interface ScoredBatch {
  inputRows: number;
  rows: SourceRow[];
  predictions: (Prediction | null)[];
  errors: RowError[];
  /** Milliseconds per stage of the batch's walk through the stage list (absent when no row was left to score). */
  timings?: StageTimings;
}

/**
 * The online pipeline applied to a batch of file rows: the version's stage list from validate to postprocess, as
 * /predict runs it. A bad row becomes a RowError, never a failed batch.
 */
export class ChunkScorer {
  constructor(
    private readonly version: ModelVersion,
    private readonly mapping: FieldMapping,
    private readonly policy: ErrorPolicy,
  ) {}

  /**
   * The batch's valid rows through the stage list (src/pipeline/stage-list.ts), validate → … → postprocess, as
   * /predict takes them, in row-tolerant mode: a row a stage refuses becomes a RowError and the others go on.
   */
  async score(batch: SourceBatch): Promise<ScoredBatch> {
    const errors: RowError[] = [];
    const failed = new Uint8Array(batch.rows.length);
    const raw: unknown[] = [];
    const rawIndex: number[] = [];
    for (let i = 0; i < batch.rows.length; i++) {
      const parseError = batch.parseErrors?.get(i);
      if (parseError !== undefined) {
        errors.push({ row: batch.firstRow + i, reason: parseError });
        failed[i] = 1;
        continue;
      }
      // The mapping only picks and types columns (text it cannot type stays text): validate refuses the row, by name.
      raw.push(this.mapping.request(batch.rows[i]!));
      rawIndex.push(i);
    }
    let predictions: Prediction[] = [];
    let timings: StageTimings | undefined;
    if (raw.length > 0) {
      const ctx = await runStages(
        stageContext(this.version, {
          rows: raw,
          tolerant: true,
          outputNames: this.version.postprocessor.outputNames,
        }),
        'validate',
        'postprocess',
      );
      for (const { index, reason } of ctx.rowErrors!) {
        errors.push({ row: batch.firstRow + rawIndex[index]!, reason });
        failed[rawIndex[index]!] = 1;
      }
      predictions = ctx.predictions!;
      timings = ctx.timings;
    }
    errors.sort((a, b) => a.row - b.row);

    if (errors.length === 0)
      return { inputRows: batch.rows.length, rows: batch.rows, predictions, errors, ...(timings ? { timings } : {}) };
    const rows: SourceRow[] = [];
    const out: (Prediction | null)[] = [];
    let next = 0;
    for (let i = 0; i < batch.rows.length; i++) {
      if (failed[i]) {
        if (this.policy === 'null') {
          rows.push(batch.rows[i]!);
          out.push(null);
        }
        continue;
      }
      rows.push(batch.rows[i]!);
      out.push(predictions[next++]!);
    }
    return { inputRows: batch.rows.length, rows, predictions: out, errors, ...(timings ? { timings } : {}) };
  }
}
