import { existsSync } from 'node:fs';
import { CaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { countRows, openRowSource } from './io/batch-input.ts';
import { partFormat, type BatchJobSpec } from './batch-job.ts';
import { ChunkScorer, firstBadRowError, type RowError, type ScoredBatch } from './chunk-scorer.ts';
import { columnarPlanFor, produceColumnarPart } from './columnar/columnar-part.ts';
import { FieldMapping } from './field-mapping.ts';
import { OutputLayout, type PartMeta } from './io/output-layout.ts';
import { openPartWriter } from './io/part-writer.ts';
import type { RowSource } from './io/source-row.ts';
import { phase, profileNote } from './phase-timer.ts';
import {
  joinedOutputSql,
  joinedSourceFor,
  rescoreFromStagedCopies,
  scoreToPredictionParts,
  type JoinedSource,
} from './columnar/prediction-parts.ts';
import { runScoringCopy, stopScoringCopies } from './columnar/scoring-copy.ts';
import { leaveOneThread } from './io/duckdb-engine.ts';
import { stopPartWrites as stopColumnarPartWrites } from './columnar/columnar-part-writer.ts';

/**
 * For a process about to exit mid-job (Ctrl-C): lets the part writes in flight finish, interrupts a one-pass COPY,
 * and starts no other; resolves when nothing is running (exiting while DuckDB waits on this thread would hang).
 */
export async function stopPartWrites(): Promise<void> {
  await Promise.all([stopColumnarPartWrites(), stopScoringCopies()]);
}

/** Receives progress as parts are scored (the CLI draws a bar from it). */
export interface BatchProgress {
  /** The bar shows the total: a CSV or JSONL read without staging is counted for it (one extra parse). */
  readonly needsTotal?: boolean;
  start(totalRows: number, doneRows: number): void;
  advance(rows: number, errors: number): void;
  stop(): void;
}

export const silentProgress: BatchProgress = { start() {}, advance() {}, stop() {} };

export interface BatchSummary {
  job: string;
  /** Input rows accounted for (scored, skipped or nulled), this run and earlier ones. */
  rows: number;
  outputRows: number;
  errors: number;
  /** Rows this run scored (the rest were committed by an earlier, interrupted run). */
  rowsThisRun: number;
  seconds: number;
  rowsPerSecond: number;
  output: string;
  errorsFile: string;
  /** Peak resident memory of this process (local runs; workers report their own). */
  peakRssBytes?: number;
  /**
   * How the output was written (local runs): `one-pass` (one DuckDB COPY scoring as it copies, scoring-copy.ts) or
   * `parts` (committed parts, then assembled or left as the output folder).
   */
  path?: 'one-pass' | 'parts';
}

/** Scored batches waiting for inference; more than one lets the next batch validate while this one runs. */
const MAX_IN_FLIGHT = 2;

/**
 * Reads up to maxRows rows from `source`, scores them in batches of spec.batchSize and writes them to one part.
 * Returns the part's meta, not yet committed, with its writer; or undefined when the source had no rows left.
 */
export async function producePart(
  source: RowSource,
  scorer: ChunkScorer,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
  start: number,
  maxRows: number,
  onBatch: (rows: number, errors: number) => void,
  keepEmpty = false,
): Promise<{ meta: PartMeta; commit(): Promise<void> } | undefined> {
  const writer = await openPartWriter(layout.partPath(fileIndex, start), partFormat(spec), spec.columns);
  const errors: RowError[] = [];
  let inputRows = 0;
  let outputRows = 0;
  const pending: Promise<ScoredBatch>[] = [];
  const write = async (scored: ScoredBatch): Promise<void> => {
    if (scored.errors.length > 0 && spec.onError === 'fail') {
      throw firstBadRowError(spec.inputs[fileIndex]!.path, scored.errors[0]!);
    }
    errors.push(...scored.errors);
    await writer.append(scored.rows, scored.predictions);
    outputRows += scored.rows.length;
    onBatch(scored.inputRows, scored.errors.length);
  };
  try {
    while (inputRows < maxRows) {
      const batch = await source.next(Math.min(spec.batchSize, maxRows - inputRows));
      if (!batch) break;
      inputRows += batch.rows.length;
      const scoring = scorer.score(batch);
      scoring.catch(() => undefined); // awaited below; this only keeps an early rejection from counting as unhandled
      pending.push(scoring);
      if (pending.length >= MAX_IN_FLIGHT) await write(await pending.shift()!);
    }
    while (pending.length > 0) await write(await pending.shift()!);
  } catch (error) {
    await Promise.allSettled(pending);
    await writer.abort();
    throw error;
  }
  if (inputRows === 0 && start > 0 && !keepEmpty) {
    await writer.abort();
    return undefined;
  }
  const meta: PartMeta = { fileIndex, start, inputRows, outputRows, errors };
  return {
    meta,
    commit: async () => {
      layout.writeMeta(meta);
      await writer.commit();
    },
  };
}

export function scorerFor(version: ModelVersion, spec: BatchJobSpec, source: RowSource, file: string): ChunkScorer {
  const mapping = new FieldMapping(version.config.inputs, source.columns, spec.map, version.hooks?.extraFields);
  const missing = mapping.missingColumns(source.columns, version.config.inputs);
  if (missing.length > 0 && source.columns.length > 0) {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${file}: no column ${missing.join(', ')} for the model's required request fields (columns: ${source.columns.map((c) => c.name).join(', ')}; use --map FIELD=COLUMN)`,
    );
  }
  return new ChunkScorer(version, mapping, spec.onError);
}

/** Where each input file resumes: after the contiguous committed parts from its first row; -1 when it is done. */
function resumePoints(spec: BatchJobSpec, parts: readonly PartMeta[]): number[] {
  return spec.inputs.map((_, fileIndex) => {
    const mine = parts.filter((p) => p.fileIndex === fileIndex).sort((a, b) => a.start - b.start);
    let next = 0;
    for (const part of mine) {
      if (part.start !== next) break;
      if (part.inputRows < spec.partRows) return -1;
      next += part.inputRows;
    }
    return next;
  });
}

/** Parses every CSV and JSONL input once into its staged Parquet copy (a copy left by an interrupted run is reused). */
export async function stageInputs(_spec: BatchJobSpec, layout: OutputLayout): Promise<void> {
  await layout.stageInputs();
}

/** Rows committed so far and where (for messages after a failure or an interrupt). */
export function committedSoFar(spec: BatchJobSpec): { rows: number; parts: number; where: string } {
  const parts = new OutputLayout(spec).committedParts();
  return { rows: parts.reduce((sum, p) => sum + p.inputRows, 0), parts: parts.length, where: spec.partsDir };
}

/** A failed run's error, saying what happened to the output and what to do next. */
function explainFailure(error: unknown, spec: BatchJobSpec, discarded: boolean): unknown {
  const message = error instanceof Error ? error.message : String(error);
  const next = discarded
    ? 'nothing was written; correct the cause and run the command again'
    : (() => {
        const done = committedSoFar(spec);
        return `${done.rows.toLocaleString('en-US')} rows are committed in ${done.where}; run the same command again to resume after them (or pass --overwrite to start over)`;
      })();
  if (error instanceof CaliperError) return new CaliperError(error.code, `${message} (${next})`, { cause: error });
  return new Error(`${message} (${next})`, { cause: error });
}

/**
 * Scores every input file on this machine, one part per spec.partRows input rows, committing each part
 * atomically; a restart with the same spec skips the committed parts and continues after them. A run that fails
 * before committing anything leaves nothing behind.
 */
export async function runLocalBatch(
  version: ModelVersion,
  spec: BatchJobSpec,
  progress: BatchProgress,
  options: {
    overwrite?: boolean;
    rowPath?: boolean;
    /**
     * Where every input file is on the columnar path and the output is assembled (one file, --partition-by), score
     * and write it in one DuckDB COPY (scoring-copy.ts; a killed run starts over) instead of resumable parts; the
     * job keeps the parts path where that COPY declines (a row needing the row path, a refused read).
     */
    onePass?: boolean;
  } = {},
): Promise<BatchSummary> {
  const started = performance.now();
  const layout = new OutputLayout(spec);
  const createdPartsDir = !existsSync(spec.partsDir);
  layout.prepare({ overwrite: options.overwrite ?? false, cleanTemporaries: true });
  let rowsThisRun = 0;
  let joined: JoinedSource[] | undefined;
  let doneBefore = 0;
  try {
    // An output assembled at the end (one file, --partition-by): every file read once by its own reader, and
    // only predictions written per part, when every file is on the columnar path (prediction-parts.ts).
    if (!options.rowPath && (spec.outputFile !== undefined || spec.partitionBy !== undefined)) {
      const sources: (JoinedSource | undefined)[] = [];
      for (let i = 0; i < spec.inputs.length; i++) sources.push(await joinedSourceFor(version, spec, layout, i));
      if (sources.every((s) => s !== undefined)) {
        joined = sources;
        layout.predictionParts = true;
      }
    }
    const committed = layout.committedParts();
    const resume = resumePoints(spec, committed);
    // DuckDB opened on one thread for a one pass (cli/batch.ts) takes its threads back where there will be none.
    if (!(joined && options.onePass && committed.every((p) => p.inputRows === 0))) await leaveOneThread();
    if (!joined) await phase('stage inputs', () => stageInputs(spec, layout));
    const counts = await phase('count rows', () =>
      Promise.all(
        spec.inputs.map((file, i) => {
          // Parquet (an input or a staged copy) is counted from its metadata; a text file by parsing it.
          const unstagedText = joined !== undefined && !joined[i]!.from.startsWith('read_parquet');
          if (!unstagedText) return countRows(layout.scanSource(i));
          return progress.needsTotal ? countRows(file) : Promise.resolve(0);
        }),
      ),
    );
    doneBefore = committed.reduce((sum, p) => sum + p.inputRows, 0);
    progress.start(
      counts.reduce((a, b) => a + b, 0),
      doneBefore,
    );
    try {
      if (joined && options.onePass && doneBefore === 0) {
        const sources = joined;
        const halves = layout.outputHalves();
        const outcome = await phase('scoring copy', () =>
          runScoringCopy(
            version,
            sources,
            layout.assembledOutput!,
            layout.outputCopyOptions(),
            (n) => progress.advance(n, 0),
            (tmp, target) => layout.placeOutput(tmp, target),
            halves,
          ),
        );
        if ('rows' in outcome) {
          layout.finishWithoutParts();
          const seconds = (performance.now() - started) / 1000;
          return {
            job: spec.id,
            rows: outcome.rows,
            outputRows: outcome.rows,
            errors: 0,
            rowsThisRun: outcome.rows,
            seconds,
            rowsPerSecond: outcome.rows / seconds,
            output: layout.result,
            errorsFile: spec.errorsFile,
            peakRssBytes: process.resourceUsage().maxRSS * 1024,
            path: 'one-pass',
          };
        }
        profileNote(`one pass declined (${outcome.declined}): scoring in parts`);
        await leaveOneThread();
        progress.start(
          counts.reduce((a, b) => a + b, 0),
          0,
        );
      }
      for (let fileIndex = 0; fileIndex < spec.inputs.length && joined; fileIndex++) {
        const start = resume[fileIndex]!;
        if (start < 0) continue;
        joined[fileIndex] = await scoreToPredictionParts(
          version,
          joined[fileIndex]!,
          spec,
          layout,
          fileIndex,
          start,
          (n, errors) => progress.advance(n, errors),
        );
      }
      for (let fileIndex = 0; fileIndex < spec.inputs.length && !joined; fileIndex++) {
        let start = resume[fileIndex]!;
        if (start < 0) continue;
        const plan = options.rowPath ? undefined : await columnarPlanFor(version, spec, layout, fileIndex);
        if (plan) {
          const rows = counts[fileIndex]!;
          // DuckDB writes part k (its own threads) while this thread scores part k+1; a crash between the two
          // leaves at worst a later part without an earlier one, which resume redoes under the same name.
          let committing: Promise<void> | undefined;
          try {
            do {
              const end = Math.min(rows, start + spec.partRows);
              const part = await produceColumnarPart(
                version,
                plan,
                spec,
                layout,
                fileIndex,
                start,
                end,
                end - start,
                (n, errors) => {
                  rowsThisRun += n;
                  progress.advance(n, errors);
                },
              );
              await committing;
              committing = part.commit();
              start += part.meta.inputRows;
              if (part.meta.inputRows < spec.partRows) break;
            } while (start < rows);
            await committing;
          } catch (error) {
            await committing?.catch(() => undefined);
            throw error;
          }
          continue;
        }
        const source = await openRowSource(layout.scanSource(fileIndex), { start, end: Infinity });
        try {
          const scorer = scorerFor(version, spec, source, spec.inputs[fileIndex]!.path);
          for (;;) {
            const part = await producePart(
              source,
              scorer,
              spec,
              layout,
              fileIndex,
              start,
              spec.partRows,
              (rows, errors) => {
                rowsThisRun += rows;
                progress.advance(rows, errors);
              },
            );
            if (!part) break;
            await part.commit();
            start += part.meta.inputRows;
            if (part.meta.inputRows < spec.partRows) break;
          }
        } finally {
          await source.close();
        }
      }
    } finally {
      progress.stop();
    }
  } catch (error) {
    throw explainFailure(error, spec, layout.discardIfNothingCommitted(createdPartsDir));
  }
  let parts = layout.committedParts();
  const finalize = (): Promise<{ outputRows: number; errors: number }> =>
    phase('finalize', () => layout.finalize(joined ? joinedOutputSql(joined, layout, parts) : undefined));
  let finalized: { outputRows: number; errors: number };
  try {
    finalized = await finalize();
  } catch (error) {
    if (!joined || !(await rescoreFromStagedCopies(version, joined, spec, layout, () => undefined))) throw error;
    parts = layout.committedParts();
    finalized = await finalize();
  }
  const { outputRows, errors } = finalized;
  // Rows committed by this run (a file scored again from a staged copy counts once).
  if (joined) rowsThisRun = parts.reduce((sum, p) => sum + p.inputRows, 0) - doneBefore;
  const seconds = (performance.now() - started) / 1000;
  return {
    job: spec.id,
    rows: parts.reduce((sum, p) => sum + p.inputRows, 0),
    outputRows,
    errors,
    rowsThisRun,
    seconds,
    rowsPerSecond: rowsThisRun / seconds,
    output: layout.result,
    errorsFile: spec.errorsFile,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    path: 'parts',
  };
}
