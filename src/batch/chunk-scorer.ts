import { CaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { Prediction } from '../pipeline/postprocess.ts';
import { runInference } from '../pipeline/predict-pipeline.ts';
import type { RequestRow } from '../pipeline/request-schema.ts';
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
}

const noPrefix = (): string => '';

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The online pipeline applied to a batch of file rows: RequestSchema.validate → hooks → features → Preprocessor.run →
 * the version's scheduler and instance pool → Postprocessor.run. A bad row becomes a RowError, never a failed batch.
 */
export class ChunkScorer {
  constructor(
    private readonly version: ModelVersion,
    private readonly mapping: FieldMapping,
    private readonly policy: ErrorPolicy,
  ) {}

  /** Validation and preprocessing run synchronously before the first await, so the next batch can be prepared while this one infers. */
  async score(batch: SourceBatch): Promise<ScoredBatch> {
    const { schema, hooks, preprocessor, postprocessor } = this.version;
    const errors: RowError[] = [];
    const failed = new Uint8Array(batch.rows.length);
    let valid: RequestRow[] = [];
    let validIndex: number[] = [];
    for (let i = 0; i < batch.rows.length; i++) {
      const parseError = batch.parseErrors?.get(i);
      if (parseError !== undefined) {
        errors.push({ row: batch.firstRow + i, reason: parseError });
        failed[i] = 1;
        continue;
      }
      try {
        let row = schema.validate(this.mapping.request(batch.rows[i]!), '');
        if (hooks?.preprocess) row = hooks.preprocess(row);
        valid.push(row);
        validIndex.push(i);
      } catch (error) {
        errors.push({ row: batch.firstRow + i, reason: reasonOf(error) });
        failed[i] = 1;
      }
    }
    /** After a stage refused the whole batch: runs it row by row, keeps the rows it accepts and records the others. */
    const keepRowsAccepted = async (stage: (row: RequestRow) => unknown): Promise<void> => {
      const kept: RequestRow[] = [];
      const keptIndex: number[] = [];
      for (let k = 0; k < valid.length; k++) {
        try {
          await stage(valid[k]!);
          kept.push(valid[k]!);
          keptIndex.push(validIndex[k]!);
        } catch (error) {
          errors.push({ row: batch.firstRow + validIndex[k]!, reason: reasonOf(error) });
          failed[validIndex[k]!] = 1;
        }
      }
      valid = kept;
      validIndex = keptIndex;
    };
    if (this.version.features && valid.length > 0) {
      const features = this.version.features;
      try {
        await features.run(valid, noPrefix);
      } catch {
        // A row without its lookup key: find it, keep the rest (the lookup fills rows in place).
        await keepRowsAccepted((row) => features.run([row], noPrefix));
      }
    }
    let inputs;
    try {
      inputs = valid.length > 0 ? preprocessor.run(valid, noPrefix) : undefined;
    } catch {
      // One row the transforms refuse (e.g. an unknown category without an enum): find it, keep the rest.
      await keepRowsAccepted((row) => preprocessor.run([row], noPrefix));
      inputs = valid.length > 0 ? preprocessor.run(valid, noPrefix) : undefined;
    }
    errors.sort((a, b) => a.row - b.row);

    let predictions: Prediction[] = [];
    if (inputs) {
      const result = await runInference(this.version, inputs, valid.length, {}, postprocessor.outputNames);
      predictions = postprocessor.run(result.outputs, valid.length);
      if (hooks?.postprocess)
        predictions = predictions.map((p, row) =>
          hooks.postprocess!(p, { outputs: result.outputs, row, request: valid[row]! }),
        );
    }

    if (errors.length === 0) return { inputRows: batch.rows.length, rows: batch.rows, predictions, errors };
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
    return { inputRows: batch.rows.length, rows, predictions: out, errors };
  }
}
