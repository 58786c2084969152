import { renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { cpus } from 'node:os';
import { copyFile, rm } from 'node:fs/promises';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import { InThreadInstance } from '../../runtime/model-instance.ts';
import { rowRangeSql } from './column-batch.ts';
import { copyOptions } from './columnar-part-writer.ts';
import type { ColumnarPlan } from './columnar-plan.ts';
import { isHalfScorerUnavailable, takePrimedHalfScorer } from './half-scorer.ts';
import { predictionsSelect, ROW_PATH_NEEDED, registerScoreFunction, scoredSelect } from './score-function.ts';
import { duckdbConnection, sqlIdentifier, sqlString } from '../io/duckdb-engine.ts';
import { profileNote, traceMark } from '../phase-timer.ts';
import type { OutputLayout, PartMeta } from '../io/output-layout.ts';
import { temporaryPathFor } from '../io/part-writer.ts';
import { freeBytes } from '../io/file-bytes.ts';
import { appendFile, type CsvHalves, splitCsvInHalves } from '../io/csv-halves.ts';
import {
  halvesBytesSetting,
  halvesMinBytesSetting,
  secondHalfThreadSetting,
  stitchSetting,
} from '../batch-settings.ts';
import { type CsvDialect, csvReaderSql } from '../io/input-scan.ts';
import { appendParquetFile, ParquetJoinError } from '../io/parquet-footer.ts';
import { parquetHalvesCut } from '../io/parquet-halves.ts';
import { type ParquetStitchLayout, parquetStitchLayout, stitchParquet } from '../io/parquet-stitch.ts';
import type { ParquetCompression } from '../io/batch-format.ts';

/**
 * The one-pass path of `caliper batch`: ONE DuckDB COPY reads every input file, scores it and writes the output, with
 * the model called from inside the query. A DuckDB scalar function (`caliper_score_N`, registered per input file)
 * receives the request fields of up to 2048 rows at a time as DOUBLE vectors (strings as dictionary codes computed in
 * SQL), runs model.yaml's columnar validation and preprocess, ONNX Runtime synchronously in this thread (the model's
 * in-thread instance), and the postprocess, and answers one STRUCT of the prediction fields per row. The kept input
 * columns go from DuckDB's reader to its writer without crossing into JavaScript, and each file is parsed once.
 *
 * How @duckdb/node-api calls it: DuckDB's thread running the query hands each vector to the JavaScript thread (a
 * thread-safe function) and waits for the answer; the COPY runs on ONE DuckDB thread, so rows are read, scored and
 * written in input order and memory stays flat (an order-preserving COPY on more threads buffers the row groups that
 * finish out of order, and its memory grew with the input).
 *
 * What it does not do, so the job keeps the parts path (prediction-parts.ts) instead, the COPY abandoned before
 * anything is renamed into place:
 *  - a row the columnar validation cannot vouch for (a null, a value out of range, a category no transform knows, a
 *    line that does not parse): the parts path scores the file again and names each bad row and its reason in the
 *    errors file, so the one-pass output never holds an error row;
 *  - a read the fast reader refuses (a CSV value past the type sniffer's sample): the parts path stages the file;
 *  - a model whose instances run on worker threads (inference there cannot answer synchronously).
 * It commits nothing before the end: a killed one-pass job leaves only its temporary file, removed by the next run,
 * which starts over (resumable parts are the parts path's, with `--chunk-rows`).
 *
 * A plain Parquet input to one Parquet file that keeps every input column as it is has its output stitched instead
 * (parquet-stitch.ts): the COPYs select and write only the prediction columns, and those are added to a copy of the
 * input's own column chunks, row group for row group, under one footer. The input's columns are then neither decoded
 * nor encoded again: 1M fraud rows, 8 runs at load 1.3-1.4, job 0.19-0.33 s (median 0.22) against DuckDB's own copy of
 * the file 0.15-0.20 s, where rewriting every column took 0.24-0.37 s. Where the stitch is refused or fails (a row
 * group the prediction files do not match, a full disk), every column is rewritten as below.
 *
 * A large input may be scored in two halves side by side (halvesOf), each by its own COPY, the outputs then joined. A
 * plain Parquet file's second half is scored on a worker thread started with the job (half-scorer.ts), with a DuckDB
 * and an ONNX Runtime session of its own: the scoring JavaScript of the two halves then runs on two threads instead
 * of queueing on this one (1M rows, 8 alternating pairs, load 1.3-1.5: job 0.24-0.37 s against 0.30-0.45 s, median
 * of the pair ratios 0.88; 0.1 s more CPU for the thread's start, on the core the main thread's start leaves idle).
 */

/** One input file as the COPY reads it: a DuckDB table expression in file order, and its compiled plan. */
export interface ScoringSource {
  from: string;
  plan: ColumnarPlan;
  /** An uncompressed CSV file read as it lies through its sniffed dialect: it may be scored in two halves. */
  csv?: { path: string; dialect: CsvDialect };
  /** A plain (not Hive) Parquet file read as it lies: it may be scored in two halves of whole row groups. */
  parquet?: { path: string };
}

/**
 * How an output written in two halves is joined: the second half's COPY options (a CSV without its header), and
 * whether its bytes are appended to the first half's output (CSV, JSONL) or its row groups joined to the first's
 * under one footer (one Parquet file: parquet-footer.ts).
 */
export interface OutputHalves {
  secondCopyOptions: string;
  join: 'append' | 'parquet';
  /** A Parquet output's compression: where the input's column chunks have it too, they are kept (parquet-stitch.ts). */
  compression?: ParquetCompression;
}

/** What the COPYs of a job in two halves select and write where. */
interface CopyShape {
  select: (from: string, plan: ColumnarPlan, fn: string) => string;
  /** The SELECT is of the prediction columns only (predictionsSelect), not the whole output row. */
  predictionsOnly: boolean;
  first: string;
  second: string;
  firstOptions: string;
  secondOptions: string;
}

/**
 * Whether the one pass writes its output by stitching the predictions to the input's own column chunks
 * (parquet-stitch.ts): one plain Parquet input and one Parquet output, which parquetStitchLayout accepts. Undefined
 * where the question does not arise; `{ refused }` says why not (CALIPER_BATCH_PROFILE's line).
 */
function stitchLayout(
  sources: readonly ScoringSource[],
  outputHalves: OutputHalves | undefined,
  mode: 'auto' | 'off',
  target: string,
): ParquetStitchLayout | { refused: string } | undefined {
  const source = sources[0];
  if (sources.length !== 1 || !source?.parquet || outputHalves?.join !== 'parquet' || !outputHalves.compression)
    return undefined;
  if (mode === 'off') return { refused: 'CALIPER_BATCH_STITCH=off' };
  // The input's copy and the prediction files lie beside the output at once (the fraud file: 1.5 times the input);
  // where that room is missing the stitch would fail after scoring every row, and the rewrite score them again.
  if (freeBytes(dirname(target)) < 2 * statSync(source.parquet.path).size)
    return { refused: 'less room beside the output than twice the input' };
  const { plan } = source;
  return parquetStitchLayout(
    source.parquet.path,
    plan.keptSql,
    plan.predictions.map((p) => p.name),
    outputHalves.compression,
    sqlIdentifier,
  );
}

/**
 * The CSV reader's buffer for each half. Two readers of DuckDB's default 32 MiB buffers running side by side held more
 * of them as the file grew (DuckDB's own memory reading two 2.5M-row halves: 122 MiB against 62 for 0.5M-row ones;
 * peak RSS of the two COPYs alone 126 → 229 MiB from 1M to 5M rows); with 4 MiB, 113 → 122 MiB at the same speed
 * (375 vs 392 ms, 1,657 vs 1,609 ms). It stays above DuckDB's 2 MiB longest line.
 */
const HALF_BUFFER_BYTES = 4 << 20;

/**
 * A CSV input at least this large (bytes) is scored in two halves side by side on a machine of two cores or more with
 * a core to spare (CALIPER_BATCH_HALVES_BYTES overrides, whatever the load; 'off': never). Cutting and copying the halves and joining the outputs cost
 * ≈ 30 ms per 28 MB; the two COPYs took 0.55–0.65 s against 0.9 s for one (1M rows, 2 cores). A Parquet input of that
 * size is cut between row groups (parquet-halves.ts) whatever the load (`spareCoreNeeded` false): nothing is copied
 * before its COPYs, and its halves finished first even with both cores spun by two other processes (1M rows, 6
 * alternating pairs, load 3.1-3.5: job 0.57-1.19 s in halves, 0.64-1.31 s one COPY, 0.04-0.06 s more CPU).
 * Throws CALIPER_CONFIG_INVALID for a malformed setting (batch-settings.ts).
 */
function halvesMinBytes(spareCoreNeeded: boolean): number {
  const from = halvesMinBytesSetting();
  if (!spareCoreNeeded || halvesBytesSetting() !== undefined) return from;
  return spareCore() ? from : Number.POSITIVE_INFINITY;
}

/** Idle time of every core (ms, from os.cpus()) when this module was loaded, early in the process's start. */
const idleSinceStart = { at: performance.now(), idleMs: idleMs() };

function idleMs(): number {
  return cpus().reduce((sum, cpu) => sum + cpu.times.idle, 0);
}

/**
 * Whether the machine has had a core to spare since this process started: the cores' idle time added up to at least
 * 0.3 of the time passed (on two cores this process's start-up keeps one busy: 100-130 ms idle in 170-215 ms with the
 * other core free, 0-20 ms in 170-240 ms beside another busy process). Where another process holds the other core, the
 * halves cannot overlap and cost more than one COPY (1M rows beside another engineer's busy job, 5 alternating pairs,
 * load 2.9-3.1: whole command 1.16-1.34 s with one COPY, 1.18-1.75 s in halves).
 */
function spareCore(): boolean {
  const elapsed = performance.now() - idleSinceStart.at;
  const idle = idleMs() - idleSinceStart.idleMs;
  profileNote(`idle core time since start: ${idle} ms in ${Math.round(elapsed)} ms`);
  return elapsed < 50 || idle >= 0.3 * elapsed;
}

/**
 * Whether `error` is a failed write (a full disk, a quota, a file too large): DuckDB's IO errors, Node's system errors
 * (appending the second half's output). A value the reader refuses or a row for the row path is not.
 */
function isWriteFailure(error: unknown): boolean {
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string') return true;
  return String(error).includes('IO Error');
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

/** The one pass's input in two halves: each half's table expression, and the files cut for them (CSV) to remove. */
interface HalvesSplit {
  first: string;
  second: string;
  /** Where the cut fell, for CALIPER_BATCH_PROFILE's line. */
  note: string;
  files: string[];
}

/**
 * How `source` is scored in two halves side by side, or undefined for one COPY: a CSV file of at least `csvFrom` bytes
 * cut at a line end into two temporary files beside `target` (for an output appended end to end), a Parquet file of
 * at least `parquetFrom` bytes cut between row groups and read where it lies (for an output joined at the footer).
 */
async function halvesOf(
  source: ScoringSource,
  join: OutputHalves['join'],
  target: string,
  csvFrom: number,
  parquetFrom: number,
): Promise<HalvesSplit | undefined> {
  const { csv, parquet } = source;
  if (csv && join === 'append') {
    let halves: CsvHalves | undefined;
    try {
      halves = splitCsvInHalves(csv.path, csv.dialect, temporaryPathFor(target), temporaryPathFor(target), csvFrom);
    } catch {
      // The halves could not be written (a full disk): one COPY reads the file where it lies.
      return undefined;
    }
    return (
      halves && {
        first: csvReaderSql(halves.first, csv.dialect, true, false, HALF_BUFFER_BYTES),
        second: csvReaderSql(halves.second, csv.dialect, false, false, HALF_BUFFER_BYTES),
        note: `cut at byte ${halves.cut}`,
        files: [halves.first, halves.second],
      }
    );
  }
  if (parquet && join === 'parquet') {
    const cut = parquetHalvesCut(parquet.path, parquetFrom);
    if (cut === undefined) return undefined;
    const file = { path: parquet.path, hive: false, text: false };
    return {
      first: rowRangeSql(file, 0, cut),
      second: rowRangeSql(file, cut, Number.POSITIVE_INFINITY),
      note: `cut before row ${cut}`,
      files: [],
    };
  }
  return undefined;
}

/** How the one-pass COPY ended: the rows it scored and wrote, or why the job keeps the parts path instead. */
export type ScoringCopyOutcome = { rows: number } | { declined: string };

/** COPYs running now, each with the way to stop it (Ctrl-C: see stopScoringCopies). */
const running = new Map<Promise<unknown>, () => void>();

/**
 * Scores every source in one COPY to `target` (`copyOptions`: DuckDB's COPY options, format and partitioning) and
 * renames the result into place. `onVector` is told each vector's rows as they are scored (progress). Resolves with
 * the rows written, or with why the job must take the parts path (nothing then is left behind: the temporary output
 * is removed). Rejects only when stopped (Ctrl-C).
 */
export async function runScoringCopy(
  version: ModelVersion,
  sources: readonly ScoringSource[],
  target: string,
  copyOptions: string,
  onVector: (rows: number) => void,
  rename: (tmp: string, target: string) => void,
  outputHalves?: OutputHalves,
): Promise<ScoringCopyOutcome> {
  const instance = version.pool.instances[0];
  if (version.pool.instances.length !== 1 || !(instance instanceof InThreadInstance))
    return { declined: 'model instances on worker threads' };
  if (sources.length === 0) return { declined: 'no input' };
  // Read before the COPYs: a malformed setting stops the job with its message instead of declining the one pass.
  const halvesFrom = outputHalves?.join === 'append' ? halvesMinBytes(true) : Number.POSITIVE_INFINITY;
  const parquetHalvesFrom = outputHalves?.join === 'parquet' ? halvesMinBytes(false) : Number.POSITIVE_INFINITY;
  const threadMode = outputHalves?.join === 'parquet' ? secondHalfThreadSetting() : 'never';
  const stitchMode = outputHalves?.join === 'parquet' ? stitchSetting() : 'off';
  // The worker thread primed for this job's second half (half-scorer.ts primeSecondHalf), if one was: this call closes it.
  const helper = outputHalves ? takePrimedHalfScorer() : undefined;
  const connection = await duckdbConnection();
  const connections = [connection];
  const stopSecond = (): void => {
    helper?.interrupt();
    for (const c of connections.slice(1)) c.interrupt();
  };
  const tmp = temporaryPathFor(target);
  const temporaries = [tmp];
  let rows = 0;
  let stopped = false;
  const count = (n: number): void => {
    rows += n;
    onVector(n);
  };
  /**
   * Runs the two halves' COPYs side by side: the first on this thread's DuckDB to `shape.first`, the second on the
   * primed worker thread where it is ready, else on a second connection here, to `shape.second`. One failing stops the
   * other; the error thrown is the one that names why (a row for the row path first).
   */
  const copyHalves = async (split: HalvesSplit, shape: CopyShape): Promise<void> => {
    const plan = sources[0]!.plan;
    // The thread scores the second half if it is ready now: one still loading (its start slowed by other work on the
    // machine) would start its half late, after the main thread could have scored it.
    const onThread = helper?.ready || threadMode === 'always' ? helper : undefined;
    const firstSelect = shape.select(split.first, plan, registerScoreFunction(connection, plan, instance, count));
    profileNote(
      `scoring copy in two halves (${split.note}${onThread ? ', the second on a worker thread' : ''}${shape.predictionsOnly ? ', predictions only' : ''})`,
    );
    // Stopped while the halves were cut (an interrupt reaches only a query already running).
    if (stopped) throw new Error('interrupted before the scoring COPYs started');
    const scoreSecondHere = async (): Promise<void> => {
      const second = await duckdbConnection();
      connections.push(second);
      if (stopped) throw new Error('interrupted before the scoring COPY started');
      const fn = registerScoreFunction(second, plan, instance, count);
      await second.run(
        `COPY (${shape.select(split.second, plan, fn)}) TO ${sqlString(shape.second)} (${shape.secondOptions})`,
      );
    };
    const scoreSecond = async (): Promise<void> => {
      if (!onThread) return scoreSecondHere();
      let helperRows = 0;
      try {
        const request = { from: split.second, target: shape.second, copyOptions: shape.secondOptions };
        return await onThread.score(plan, { ...request, predictionsOnly: shape.predictionsOnly }, (n) => {
          helperRows += n;
          count(n);
        });
      } catch (error) {
        if (!isHalfScorerUnavailable(error) || stopped) throw error;
        // The thread is gone (it could not start, or exited): this thread scores the second half after all.
        profileNote(`${error.message}: the second half is scored on this thread`);
        rows -= helperRows;
        onVector(-helperRows);
        return scoreSecondHere();
      }
    };
    traceMark('main: copies start');
    const copies = [
      connection.run(`COPY (${firstSelect}) TO ${sqlString(shape.first)} (${shape.firstOptions})`).then((r) => {
        traceMark('main: first copy end');
        return r;
      }),
      scoreSecond().then(() => traceMark('main: second copy end')),
    ];
    const stops = [() => stopSecond(), () => connection.interrupt()];
    // One half failing stops the other at once (the job then keeps the parts path). The half that failed first names
    // why: the other's error then only says it was interrupted, and which half that is varies.
    const failures: unknown[] = [];
    copies.forEach((copy, i) =>
      copy.catch((error: unknown) => {
        failures.push(error);
        stops[i]!();
      }),
    );
    await Promise.allSettled(copies);
    if (failures.length > 0) throw failures.find((f) => String(f).includes(ROW_PATH_NEEDED)) ?? failures[0];
  };
  /**
   * Whether an attempt that failed with `error` is written again another way (every column rewritten, one COPY): a
   * join or stitch the files refuse, a failed write. Not when stopped, nor for a row the row path must see.
   */
  const recoverable = (error: unknown): boolean =>
    !stopped &&
    !String(error).includes(ROW_PATH_NEEDED) &&
    (error instanceof ParquetJoinError || isWriteFailure(error));
  /** Forgets the rows counted by an attempt that is abandoned (its output is then written again another way). */
  const uncount = (): void => {
    const counted = rows;
    rows = 0;
    onVector(-counted);
  };
  /**
   * The stitched output (parquet-stitch.ts): only the prediction columns scored and written, by one COPY or in two
   * halves, then added to a copy of the input's bytes (taken by libuv's thread pool while they are scored). Resolves
   * false where the files cannot be stitched (their row groups do not align) or a write failed: nothing is then left
   * behind, and the caller writes the output by rewriting every column.
   */
  const scoreStitched = async (layout: ParquetStitchLayout, input: string): Promise<boolean> => {
    const copying = copyFile(input, tmp);
    copying.catch(() => undefined);
    const first = temporaryPathFor(target);
    const second = temporaryPathFor(target);
    temporaries.push(first, second);
    const rowGroups = `, ROW_GROUP_SIZE ${layout.rowGroupRows}`;
    try {
      const split = await halvesOf(sources[0]!, 'parquet', target, Number.POSITIVE_INFINITY, parquetHalvesFrom);
      if (split)
        await copyHalves(split, {
          select: predictionsSelect,
          predictionsOnly: true,
          first,
          second,
          firstOptions: copyOptions + rowGroups,
          secondOptions: outputHalves!.secondCopyOptions + rowGroups,
        });
      else {
        const { from, plan } = sources[0]!;
        const fn = registerScoreFunction(connection, plan, instance, count);
        if (stopped) throw new Error('interrupted before the scoring COPY started');
        await connection.run(
          `COPY (${predictionsSelect(from, plan, fn)}) TO ${sqlString(first)} (${copyOptions + rowGroups})`,
        );
      }
      await copying;
      traceMark('main: stitch start');
      const stitched = stitchParquet(input, split ? [first, second] : [first], tmp, true);
      traceMark('main: stitched');
      profileNote(`predictions stitched to the input's columns (${stitched.rowGroups} row groups)`);
      return true;
    } catch (error) {
      // The input's copy ends before anything is removed (a copy still running would write the file again).
      await copying.catch(() => undefined);
      if (!recoverable(error)) throw error;
      await Promise.all([tmp, first, second].map((path) => rm(path, { force: true })));
      profileNote(`the predictions could not be stitched (${firstLine(error)}): every column rewritten`);
      uncount();
      return false;
    }
  };
  const run = async (): Promise<ScoringCopyOutcome> => {
    try {
      const threads = (await connection.runAndReadAll(`SELECT current_setting('threads')::INTEGER`)).getRows()[0]![0];
      // A `caliper worker` runs DuckDB on one thread already: its shards leave the setting alone; so does a job whose
      // DuckDB was opened on one thread for the one pass (openDuckdbOnOneThread; the runner gives it its threads back
      // where the job leaves the one pass).
      if (threads !== 1) await connection.run('SET threads = 1');
      try {
        let scored = false;
        const stitch = stitchLayout(sources, outputHalves, stitchMode, target);
        if (stitch && 'refused' in stitch) profileNote(`every column rewritten: ${stitch.refused}`);
        if (stitch && 'rowGroupRows' in stitch && !stopped)
          scored = await scoreStitched(stitch, sources[0]!.parquet!.path);
        const split =
          !scored && outputHalves && sources.length === 1 && !stopped
            ? await halvesOf(sources[0]!, outputHalves.join, target, halvesFrom, parquetHalvesFrom)
            : undefined;
        if (split) temporaries.push(...split.files);
        if (split && outputHalves) {
          const secondOutput = temporaryPathFor(target);
          temporaries.push(secondOutput);
          try {
            await copyHalves(split, {
              select: scoredSelect,
              predictionsOnly: false,
              first: tmp,
              second: secondOutput,
              firstOptions: copyOptions,
              secondOptions: outputHalves.secondCopyOptions,
            });
            // A CSV's halves are read: their room goes to the second half's output appended to the first.
            await Promise.all(split.files.map((path) => rm(path, { force: true })));
            if (outputHalves.join === 'parquet') appendParquetFile(tmp, secondOutput);
            else appendFile(tmp, secondOutput);
            scored = true;
          } catch (error) {
            if (!recoverable(error)) throw error;
            const refused = error instanceof ParquetJoinError;
            // The halves need more room than one COPY (a CSV's size again, the second half's output twice while it
            // is appended): where a write failed, one COPY from the file where it lies writes the output alone. So
            // too where the two Parquet outputs' footers cannot be joined: DuckDB writes some from the rows (a
            // GEOMETRY column's 'geo' bounding box, a VARIANT column's shredded schema), which says nothing of the
            // rows themselves; the parts path would score them all again, row by row (1M rows with a point column:
            // 1.83 s against 0.84 s for one COPY).
            const files = [tmp, secondOutput, ...split.files];
            await Promise.all(files.map((path) => rm(path, { force: true })));
            profileNote(`the halves could not be ${refused ? 'joined' : 'written'} (${firstLine(error)}): one COPY`);
            uncount();
          }
        }
        if (!scored) {
          const selects = sources.map((s) =>
            scoredSelect(s.from, s.plan, registerScoreFunction(connection, s.plan, instance, count)),
          );
          if (stopped) throw new Error('interrupted before the scoring COPY started');
          await connection.run(`COPY (${selects.join(' UNION ALL ')}) TO ${sqlString(tmp)} (${copyOptions})`);
        }
        // A stop that came as the COPY ended: nothing is put in place.
        if (stopped) throw new Error('interrupted');
      } catch (error) {
        if (stopped) throw error;
        const message = error instanceof Error ? error.message : String(error);
        return { declined: message.includes(ROW_PATH_NEEDED) ? 'a row needs the row path' : message };
      } finally {
        if (threads !== 1) await connection.run(`SET threads = ${threads}`);
      }
      rename(tmp, target);
      return { rows };
    } finally {
      // The thread ends on its own time (the process waits for it): the job does not.
      void helper?.close();
      await Promise.all(temporaries.map((path) => rm(path, { recursive: true, force: true })));
      for (const c of connections) c.closeSync();
    }
  };
  const done = run();
  // Stopping interrupts the queries; the process may exit once `done` settles (the temporaries removed by then).
  running.set(done, () => {
    stopped = true;
    connection.interrupt();
    stopSecond();
  });
  try {
    return await done;
  } finally {
    running.delete(done);
  }
}

/**
 * For a process about to exit mid-job (Ctrl-C): interrupts the one-pass COPYs running and resolves when they have
 * ended (exiting while one runs would hang: DuckDB waits for the query, and the query for this thread's answer).
 */
export async function stopScoringCopies(): Promise<void> {
  const copies = [...running];
  for (const [, stop] of copies) stop();
  await Promise.allSettled(copies.map(([copy]) => copy));
}

/**
 * A `--queue` shard on the one-pass path: rows [start, end) of input file `fileIndex` (`end` Infinity: to the file's end)
 * read from `plan`'s scan source, scored and written by ONE COPY into the shard's part file, in the columns, types and
 * format the parts path writes (ColumnarPartWriter.commit). Committed as the parts path commits a part: its meta first,
 * then the file renamed into place, so a retried shard rewrites the same part. Resolves with the part's meta, or
 * undefined where the one pass declines (a row the columnar validation marks, instances on worker threads): nothing is
 * then left behind and the caller scores the range on the parts path, which names each bad row in the part's errors.
 */
export async function scoreRangeToPart(
  version: ModelVersion,
  plan: ColumnarPlan,
  layout: OutputLayout,
  fileIndex: number,
  start: number,
  end: number,
  onVector: (rows: number) => void = () => undefined,
): Promise<PartMeta | undefined> {
  let meta: PartMeta | undefined;
  let rows = 0;
  const outcome = await runScoringCopy(
    version,
    [{ from: rowRangeSql(plan.source, start, end), plan }],
    layout.partPath(fileIndex, start),
    copyOptions(layout.partWriteOptions()),
    (n) => {
      rows += n;
      onVector(n);
    },
    (tmp, target) => {
      meta = { fileIndex, start, inputRows: rows, outputRows: rows, errors: [] };
      layout.writeMeta(meta);
      renameSync(tmp, target);
    },
  );
  return 'rows' in outcome ? meta : undefined;
}
