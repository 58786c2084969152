import {
  accessSync,
  constants,
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { open } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { CaliperError } from '../../errors.ts';
import { compressionOfPath, fileExtension, type ParquetCompression, type TextCompression } from './batch-format.ts';
import { partFormat, type BatchJobSpec } from '../batch-job.ts';
import type { PartWriteOptions } from '../columnar/columnar-part-writer.ts';
import type { RowError } from '../chunk-scorer.ts';
import { duckdbConnection, sqlIdentifier, sqlString } from './duckdb-engine.ts';
import { scanSource, stageInput, type ScanSource } from './input-scan.ts';
import { openPartWriter, temporaryPathFor } from './part-writer.ts';

/** What a committed part holds, stored next to it (written before the part's own commit rename). */
export interface PartMeta {
  fileIndex: number;
  start: number;
  inputRows: number;
  outputRows: number;
  errors: RowError[];
}

const MANIFEST_DIR = '_caliper';
const PART_NAME = /^part-(\d{5})-(\d{12})\.(parquet|csv|jsonl)$/;
/**
 * Why the job's folders cannot be made under `dir`: the nearest folder that exists is not writable (a read-only file
 * system, no permission). Node's recursive mkdir reports both as ENOENT, "no such file or directory", for a folder
 * that is there. Other failures are returned as they came.
 */
function unwritableOutput(dir: string, error: unknown): unknown {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  try {
    accessSync(existing, constants.W_OK);
    return error;
  } catch (denied) {
    const code = (denied as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'a read-only file system' : code === 'EACCES' ? 'no permission to write' : code;
    return new CaliperError('CALIPER_INVALID_INPUT', `--output: cannot write in ${existing} (${why})`, {
      cause: error,
    });
  }
}

/** A temporary written by temporaryPathFor: `.FINAL-NAME.tmp-PID-HEX`. */
const isTemporary = (name: string): boolean => name.startsWith('.') && name.includes('.tmp-');

/**
 * The output on disk: part files named by (input file, first input row), so a part written twice (a retried
 * shard, a restarted chunk) replaces itself and can never appear twice; _caliper/ holds job.json and part metas.
 */
export class OutputLayout {
  readonly manifestDir: string;
  /**
   * Parts hold only predictions (Parquet), joined with the input files when the output is assembled
   * (src/batch/columnar/prediction-parts.ts); set by the runner before any part is read or written.
   */
  predictionParts = false;

  constructor(readonly spec: BatchJobSpec) {
    this.manifestDir = join(spec.partsDir, MANIFEST_DIR);
  }

  partName(fileIndex: number, start: number): string {
    const format = this.predictionParts ? 'parquet' : partFormat(this.spec);
    return `part-${String(fileIndex).padStart(5, '0')}-${String(start).padStart(12, '0')}${fileExtension(format)}`;
  }

  /** Where a CSV or JSONL input is staged as Parquet for scoring (kept until the job finishes, so a resumed run reuses it). */
  stagedPath(fileIndex: number): string {
    return join(this.manifestDir, `input-${String(fileIndex).padStart(5, '0')}.parquet`);
  }

  /** Parses every CSV and JSONL input once into its staged Parquet copy (a copy left by an interrupted run is reused). */
  async stageInputs(): Promise<void> {
    for (let i = 0; i < this.spec.inputs.length; i++) await stageInput(this.spec.inputs[i]!, this.stagedPath(i));
  }

  scanSource(fileIndex: number): ScanSource {
    return scanSource(this.spec.inputs[fileIndex]!, this.stagedPath(fileIndex));
  }

  /** Parts merged or repartitioned at the end are written uncompressed (faster both ways); parts that are the output, as asked. */
  partWriteOptions(): PartWriteOptions {
    const intermediate = this.spec.outputFile !== undefined || this.spec.partitionBy !== undefined;
    return {
      format: partFormat(this.spec),
      compression: intermediate ? 'uncompressed' : (this.spec.compression ?? 'snappy'),
    };
  }

  /** Where the job writes its result: the single file, the partitioned folder, or the folder of parts. */
  get result(): string {
    return this.spec.outputFile ?? (this.spec.partitionBy ? this.spec.output : this.spec.partsDir);
  }

  partPath(fileIndex: number, start: number): string {
    return join(this.spec.partsDir, this.partName(fileIndex, start));
  }

  /** Creates the folders and job.json; a folder holding a different job is refused, not overwritten. */
  prepare(options: { overwrite: boolean; cleanTemporaries: boolean }): void {
    const jobFile = join(this.manifestDir, 'job.json');
    if (options.overwrite) this.discard();
    const merged = this.spec.outputFile ?? (this.spec.partitionBy ? this.spec.output : undefined);
    if (merged && existsSync(merged) && !existsSync(jobFile)) {
      if (!options.overwrite)
        throw new CaliperError(
          'CALIPER_CONFLICT',
          `--output: ${merged} already exists (pass --overwrite to replace it)`,
        );
      rmSync(merged, { recursive: true, force: true });
    }
    if (existsSync(jobFile)) {
      const existing = JSON.parse(readFileSync(jobFile, 'utf8')) as BatchJobSpec;
      if (existing.id !== this.spec.id) {
        if (!options.overwrite) {
          throw new CaliperError(
            'CALIPER_CONFLICT',
            `--output: ${this.spec.partsDir} holds another batch job (${existing.id.slice(0, 12)}: different model, inputs or options); pass --overwrite to discard it or choose another --output`,
          );
        }
        rmSync(this.spec.partsDir, { recursive: true, force: true });
      }
    } else if (existsSync(this.spec.partsDir) && readdirSync(this.spec.partsDir).some((f) => PART_NAME.test(f))) {
      if (!options.overwrite)
        throw new CaliperError(
          'CALIPER_CONFLICT',
          `--output: ${this.spec.partsDir} already holds part files (pass --overwrite to replace them)`,
        );
      rmSync(this.spec.partsDir, { recursive: true, force: true });
    }
    try {
      mkdirSync(this.manifestDir, { recursive: true });
    } catch (error) {
      throw unwritableOutput(this.manifestDir, error);
    }
    if (!existsSync(jobFile)) this.writeAtomically(jobFile, `${JSON.stringify(this.spec, null, 2)}\n`);
    if (options.cleanTemporaries) this.removeTemporaries();
  }

  /**
   * Removes the hidden temporaries a killed run left (`.NAME.tmp-PID-…`): of parts and metas in the parts and manifest
   * folders, and of this job's merged file or partitioned folder beside it (only those named after it).
   */
  removeTemporaries(): void {
    for (const dir of [this.spec.partsDir, this.manifestDir]) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) if (isTemporary(f)) rmSync(join(dir, f), { recursive: true, force: true });
    }
    const merged = this.spec.outputFile ?? (this.spec.partitionBy ? this.spec.output : undefined);
    if (merged === undefined || !existsSync(dirname(merged))) return;
    const prefix = `.${basename(merged)}.tmp-`;
    for (const f of readdirSync(dirname(merged)))
      if (f.startsWith(prefix)) rmSync(join(dirname(merged), f), { recursive: true, force: true });
  }

  /** --overwrite: removes what a batch job wrote here (parts, manifest, merged file), nothing else in the folder. */
  private discard(): void {
    if (this.spec.outputFile) rmSync(this.spec.outputFile, { force: true });
    if (this.spec.partitionBy) rmSync(this.spec.output, { recursive: true, force: true });
    if (!existsSync(this.spec.partsDir)) return;
    for (const name of readdirSync(this.spec.partsDir)) {
      if (PART_NAME.test(name) || name === MANIFEST_DIR || isTemporary(name))
        rmSync(join(this.spec.partsDir, name), { recursive: true, force: true });
    }
    if (readdirSync(this.spec.partsDir).length === 0 && this.spec.partsDir !== this.spec.output)
      rmSync(this.spec.partsDir, { recursive: true, force: true });
    rmSync(this.spec.errorsFile, { force: true });
  }

  /**
   * After a run that failed: when no part is committed (this run or an earlier one), removes everything the job
   * wrote (manifest, staged inputs, temporaries, a folder it created), so the corrected command starts clean.
   * Returns whether it did.
   */
  discardIfNothingCommitted(createdPartsDir: boolean): boolean {
    if (this.committedParts().length > 0) return false;
    this.discard();
    if (createdPartsDir && existsSync(this.spec.partsDir) && readdirSync(this.spec.partsDir).length === 0)
      rmSync(this.spec.partsDir, { recursive: true, force: true });
    return true;
  }

  writeAtomically(path: string, text: string): void {
    const tmp = temporaryPathFor(path);
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  }

  /** The meta goes first: a meta without its part is an uncommitted part, overwritten when the part is redone. */
  writeMeta(meta: PartMeta): void {
    this.writeAtomically(
      join(this.manifestDir, `${this.partName(meta.fileIndex, meta.start)}.json`),
      JSON.stringify(meta),
    );
  }

  /** Removes input file `fileIndex`'s parts and their metas (a file scored again from the start). */
  removeParts(fileIndex: number): void {
    const prefix = `part-${String(fileIndex).padStart(5, '0')}-`;
    for (const dir of [this.spec.partsDir, this.manifestDir]) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) if (f.startsWith(prefix)) rmSync(join(dir, f), { force: true });
    }
  }

  /** Committed parts (their data file exists), in output order. */
  committedParts(): PartMeta[] {
    if (!existsSync(this.spec.partsDir)) return [];
    const metas: PartMeta[] = [];
    for (const name of readdirSync(this.spec.partsDir).sort()) {
      if (!PART_NAME.test(name)) continue;
      const metaFile = join(this.manifestDir, `${name}.json`);
      if (!existsSync(metaFile)) continue;
      metas.push(JSON.parse(readFileSync(metaFile, 'utf8')) as PartMeta);
    }
    return metas;
  }

  /**
   * Writes the errors file, and for a single-file output merges the parts into it (then removes them):
   * the output appears under its final name in one rename.
   */
  async finalize(joinedSelect?: string): Promise<{ outputRows: number; errors: number }> {
    // Every part is committed now: a temporary left here is a dead writer's (a worker killed with -9 mid-part).
    this.removeTemporaries();
    const parts = this.committedParts();
    const lines = parts.flatMap((p) =>
      p.errors.map((e) =>
        JSON.stringify({ file: this.spec.inputs[p.fileIndex]!.path, row: e.row + 1, reason: e.reason }),
      ),
    );
    // No errors, no errors file (and none left from an earlier run of the same output).
    if (lines.length > 0) this.writeAtomically(this.spec.errorsFile, `${lines.join('\n')}\n`);
    else rmSync(this.spec.errorsFile, { force: true });
    const outputRows = parts.reduce((sum, p) => sum + p.outputRows, 0);
    const partPaths = parts.map((p) => this.partPath(p.fileIndex, p.start));
    if (this.predictionParts && joinedSelect !== undefined) {
      await this.writeJoined(joinedSelect);
    } else if (this.spec.partitionBy) {
      await this.writePartitioned(this.predictionParts ? [] : partPaths);
    } else if (this.spec.outputFile) {
      await this.merge(this.predictionParts ? [] : partPaths, this.spec.outputFile);
    } else {
      // A folder of parts is the output: the staged inputs are no longer needed (the manifest stays for the record).
      this.spec.inputs.forEach((_, i) => rmSync(this.stagedPath(i), { force: true }));
      return { outputRows, errors: lines.length };
    }
    rmSync(this.spec.partsDir, { recursive: true, force: true });
    return { outputRows, errors: lines.length };
  }

  /** One thread: an order-preserving parallel COPY buffers out-of-order row groups, so its memory grows with the output. */
  private async singleThreaded(run: (connection: DuckDBConnection) => Promise<void>): Promise<void> {
    const connection = await duckdbConnection();
    try {
      const threads = (
        await connection.runAndReadAll(`SELECT current_setting('threads')::INTEGER`)
      ).getRows()[0]![0] as number;
      await connection.run('SET threads = 1');
      try {
        await run(connection);
      } finally {
        await connection.run(`SET threads = ${threads}`);
      }
    } finally {
      connection.closeSync();
    }
  }

  /** The assembled output (one file, or the --partition-by folder); undefined for a folder of parts. */
  get assembledOutput(): string | undefined {
    return this.spec.partitionBy ? this.spec.output : this.spec.outputFile;
  }

  /** DuckDB COPY options writing the assembled output: its format (and compression), and --partition-by's folders. */
  outputCopyOptions(): string {
    return this.spec.partitionBy
      ? `${this.outputCopyFormat()}, PARTITION_BY (${sqlIdentifier(this.spec.partitionBy)})`
      : this.outputCopyFormat();
  }

  /**
   * Where the output is one file, how a second half of it is written and joined to the first: CSV and JSONL bytes
   * appended (a CSV's second half without its header), Parquet row groups joined under one footer; undefined for
   * folder outputs (--partition-by).
   */
  outputHalves():
    | { secondCopyOptions: string; join: 'append' | 'parquet'; compression?: ParquetCompression }
    | undefined {
    if (this.spec.partitionBy !== undefined || this.spec.outputFile === undefined) return undefined;
    // A compressed file is one stream that DuckDB ends when its COPY ends: a second COPY's bytes cannot be appended.
    if (this.textCompression !== undefined) return undefined;
    switch (this.spec.format) {
      case 'csv':
        return { secondCopyOptions: 'FORMAT csv, HEADER false', join: 'append' };
      case 'jsonl':
        return { secondCopyOptions: this.outputCopyFormat(), join: 'append' };
      case 'parquet':
        return {
          secondCopyOptions: this.outputCopyFormat(),
          join: 'parquet',
          compression: this.spec.compression ?? 'snappy',
        };
    }
  }

  /** Puts a finished output (file or folder) in place: `tmp` renamed over whatever `target` held. */
  placeOutput(tmp: string, target: string): void {
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  }

  /**
   * After an output written in one pass (no parts, no error rows): removes an errors file left by an earlier run of
   * the same output and the job's parts folder (its manifest, staged inputs).
   */
  finishWithoutParts(): void {
    rmSync(this.spec.errorsFile, { force: true });
    rmSync(this.spec.partsDir, { recursive: true, force: true });
  }

  /**
   * Prediction parts: the output written by one COPY of `select` (the input files joined with their predictions),
   * single-threaded so that DuckDB streams it in order without buffering row groups; it appears in one rename.
   */
  private async writeJoined(select: string): Promise<void> {
    const target = this.assembledOutput!;
    const tmp = temporaryPathFor(target);
    try {
      await this.singleThreaded((connection) =>
        connection.run(`COPY (${select}) TO ${sqlString(tmp)} (${this.outputCopyOptions()})`).then(() => undefined),
      );
    } catch (error) {
      rmSync(tmp, { recursive: true, force: true });
      throw error;
    }
    this.placeOutput(tmp, target);
  }

  /**
   * gzip or zstd where the output is one CSV or JSONL file named .gz or .zst, else undefined. Named explicitly in the
   * COPY: DuckDB picks it from the extension of the file it writes, and it writes a temporary name (.out.csv.gz.tmp-…).
   */
  private get textCompression(): TextCompression | undefined {
    const file = this.spec.outputFile;
    return file !== undefined && this.spec.format !== 'parquet' ? compressionOfPath(file) : undefined;
  }

  private outputCopyFormat(): string {
    const compression = this.textCompression ? `, COMPRESSION ${this.textCompression}` : '';
    switch (this.spec.format) {
      case 'parquet':
        return `FORMAT parquet, COMPRESSION ${this.spec.compression ?? 'snappy'}`;
      case 'csv':
        return `FORMAT csv, HEADER true${compression}`;
      case 'jsonl':
        return this.spec.partitionBy ? `FORMAT json, FILE_EXTENSION 'jsonl'` : `FORMAT json${compression}`;
    }
  }

  private async merge(partPaths: readonly string[], outputFile: string): Promise<void> {
    const tmp = temporaryPathFor(outputFile);
    if (this.textCompression !== undefined) {
      // Parquet parts (partFormat) rewritten by one COPY into one compressed stream; no part: a header-only file.
      const empty = partPaths.length === 0 ? `${temporaryPathFor(outputFile)}.parquet` : undefined;
      try {
        if (empty) await (await openPartWriter(empty, 'parquet', this.spec.columns)).commit();
        const sources = empty ? [empty] : partPaths;
        await this.singleThreaded((connection) =>
          connection
            .run(
              `COPY (SELECT * FROM read_parquet([${sources.map(sqlString).join(', ')}])) TO ${sqlString(tmp)} (${this.outputCopyFormat()})`,
            )
            .then(() => undefined),
        );
      } catch (error) {
        rmSync(tmp, { force: true });
        throw error;
      } finally {
        if (empty) rmSync(empty, { force: true });
      }
    } else if (this.spec.format === 'parquet') {
      if (partPaths.length === 0) {
        const empty = await openPartWriter(tmp, 'parquet', this.spec.columns);
        await empty.commit();
      } else {
        await this.singleThreaded((connection) =>
          connection
            .run(
              `COPY (SELECT * FROM read_parquet([${partPaths.map(sqlString).join(', ')}])) TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION ${this.spec.compression ?? 'snappy'})`,
            )
            .then(() => undefined),
        );
      }
    } else {
      // Appended through one file handle, part after part: a stream piped into once per part (pipeline with
      // end: false) kept each pipe's listeners on it, and more than 10 parts warned MaxListenersExceededWarning.
      const out = await open(tmp, 'w');
      try {
        if (this.spec.format === 'csv')
          await out.write(
            `${partPaths.length > 0 ? headerLine(partPaths[0]!) : this.spec.columns.map((c) => c.name).join(',')}\n`,
          );
        for (const path of partPaths) {
          // CSV parts each start with the header line; skip it when concatenating.
          const source = createReadStream(path, this.spec.format === 'csv' ? { start: headerBytes(path) } : {});
          for await (const chunk of source) await out.write(chunk as Buffer);
        }
        await out.sync();
      } finally {
        await out.close();
      }
    }
    renameSync(tmp, outputFile);
  }

  /** --partition-by: the parts rewritten by DuckDB as COL=VALUE/ folders under the output, which appears in one rename. */
  private async writePartitioned(partPaths: readonly string[]): Promise<void> {
    const output = this.spec.output;
    const tmp = temporaryPathFor(output);
    const format =
      this.spec.format === 'parquet'
        ? `FORMAT parquet, COMPRESSION ${this.spec.compression ?? 'snappy'}`
        : this.spec.format === 'csv'
          ? 'FORMAT csv, HEADER true'
          : `FORMAT json, FILE_EXTENSION 'jsonl'`;
    if (partPaths.length === 0) {
      mkdirSync(tmp, { recursive: true });
    } else {
      await this.singleThreaded((connection) =>
        connection
          .run(
            `COPY (SELECT * FROM read_parquet([${partPaths.map(sqlString).join(', ')}])) TO ${sqlString(tmp)} (${format}, PARTITION_BY (${sqlIdentifier(this.spec.partitionBy!)}))`,
          )
          .then(() => undefined),
      );
    }
    rmSync(output, { recursive: true, force: true });
    renameSync(tmp, output);
  }
}

function headerLine(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(64 * 1024);
    const read = readSync(fd, head, 0, head.length, 0);
    const newline = head.subarray(0, read).indexOf(10);
    return head
      .subarray(0, newline === -1 ? read : newline)
      .toString('utf8')
      .replace(/\r$/, '');
  } finally {
    closeSync(fd);
  }
}

function headerBytes(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(64 * 1024);
    const read = readSync(fd, head, 0, head.length, 0);
    const newline = head.subarray(0, read).indexOf(10);
    return newline === -1 ? read : newline + 1;
  } finally {
    closeSync(fd);
  }
}
