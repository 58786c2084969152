import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CaliperError } from '../../errors.ts';
import { fileExtension } from './batch-format.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import type { RowError } from '../chunk-scorer.ts';
import { duckdbConnection, sqlString } from './duckdb-engine.ts';
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
 * The output on disk: part files named by (input file, first input row), so a part written twice (a retried
 * shard, a restarted chunk) replaces itself and can never appear twice; _caliper/ holds job.json and part metas.
 */
export class OutputLayout {
  readonly manifestDir: string;

  constructor(readonly spec: BatchJobSpec) {
    this.manifestDir = join(spec.partsDir, MANIFEST_DIR);
  }

  partName(fileIndex: number, start: number): string {
    return `part-${String(fileIndex).padStart(5, '0')}-${String(start).padStart(12, '0')}${fileExtension(this.spec.format)}`;
  }

  partPath(fileIndex: number, start: number): string {
    return join(this.spec.partsDir, this.partName(fileIndex, start));
  }

  /** Creates the folders and job.json; a folder holding a different job is refused, not overwritten. */
  prepare(options: { overwrite: boolean; cleanTemporaries: boolean }): void {
    const jobFile = join(this.manifestDir, 'job.json');
    if (options.overwrite) this.discard();
    if (this.spec.outputFile && existsSync(this.spec.outputFile) && !existsSync(jobFile)) {
      if (!options.overwrite) throw new CaliperError('CALIPER_CONFLICT', `--output: ${this.spec.outputFile} already exists (pass --overwrite to replace it)`);
      rmSync(this.spec.outputFile, { force: true });
    }
    if (existsSync(jobFile)) {
      const existing = JSON.parse(readFileSync(jobFile, 'utf8')) as BatchJobSpec;
      if (existing.id !== this.spec.id) {
        if (!options.overwrite) {
          throw new CaliperError('CALIPER_CONFLICT', `--output: ${this.spec.partsDir} holds another batch job (${existing.id.slice(0, 12)}: different model, inputs or options); pass --overwrite to discard it or choose another --output`);
        }
        rmSync(this.spec.partsDir, { recursive: true, force: true });
      }
    } else if (existsSync(this.spec.partsDir) && readdirSync(this.spec.partsDir).some((f) => PART_NAME.test(f))) {
      if (!options.overwrite) throw new CaliperError('CALIPER_CONFLICT', `--output: ${this.spec.partsDir} already holds part files (pass --overwrite to replace them)`);
      rmSync(this.spec.partsDir, { recursive: true, force: true });
    }
    mkdirSync(this.manifestDir, { recursive: true });
    if (!existsSync(jobFile)) this.writeAtomically(jobFile, `${JSON.stringify(this.spec, null, 2)}\n`);
    if (options.cleanTemporaries) {
      for (const dir of [this.spec.partsDir, this.manifestDir]) {
        for (const f of readdirSync(dir)) if (f.startsWith('.') && f.includes('.tmp-')) rmSync(join(dir, f), { force: true });
      }
    }
  }

  /** --overwrite: removes what a batch job wrote here (parts, manifest, merged file), nothing else in the folder. */
  private discard(): void {
    if (this.spec.outputFile) rmSync(this.spec.outputFile, { force: true });
    if (!existsSync(this.spec.partsDir)) return;
    for (const name of readdirSync(this.spec.partsDir)) {
      if (PART_NAME.test(name) || name === MANIFEST_DIR || (name.startsWith('.') && name.includes('.tmp-'))) rmSync(join(this.spec.partsDir, name), { recursive: true, force: true });
    }
    rmSync(this.spec.errorsFile, { force: true });
  }

  writeAtomically(path: string, text: string): void {
    const tmp = temporaryPathFor(path);
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  }

  /** The meta goes first: a meta without its part is an uncommitted part, overwritten when the part is redone. */
  writeMeta(meta: PartMeta): void {
    this.writeAtomically(join(this.manifestDir, `${this.partName(meta.fileIndex, meta.start)}.json`), JSON.stringify(meta));
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
  async finalize(): Promise<{ outputRows: number; errors: number }> {
    const parts = this.committedParts();
    const lines = parts.flatMap((p) => p.errors.map((e) => JSON.stringify({ file: this.spec.inputs[p.fileIndex]!.path, row: e.row + 1, reason: e.reason })));
    this.writeAtomically(this.spec.errorsFile, lines.length > 0 ? `${lines.join('\n')}\n` : '');
    const outputRows = parts.reduce((sum, p) => sum + p.outputRows, 0);
    if (!this.spec.outputFile) return { outputRows, errors: lines.length };

    const partPaths = parts.map((p) => this.partPath(p.fileIndex, p.start));
    const tmp = temporaryPathFor(this.spec.outputFile);
    if (this.spec.format === 'parquet') {
      const connection = await duckdbConnection();
      try {
        if (partPaths.length === 0) {
          const empty = await openPartWriter(tmp, 'parquet', this.spec.columns);
          await empty.commit();
        } else {
          // One thread: an order-preserving parallel COPY buffers out-of-order row groups, so its memory grows with the output.
          const threads = (await connection.runAndReadAll(`SELECT current_setting('threads')::INTEGER`)).getRows()[0]![0] as number;
          await connection.run('SET threads = 1');
          try {
            await connection.run(`COPY (SELECT * FROM read_parquet([${partPaths.map(sqlString).join(', ')}])) TO ${sqlString(tmp)} (FORMAT parquet)`);
          } finally {
            await connection.run(`SET threads = ${threads}`);
          }
        }
      } finally {
        connection.closeSync();
      }
    } else {
      const out = createWriteStream(tmp);
      if (this.spec.format === 'csv') out.write(`${this.spec.columns.map((c) => c.name).join(',')}\n`);
      for (const path of partPaths) {
        // CSV parts each start with the header line; skip it when concatenating.
        const source = createReadStream(path, this.spec.format === 'csv' ? { start: headerBytes(path) } : {});
        await pipeline(source, out, { end: false });
      }
      await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    }
    renameSync(tmp, this.spec.outputFile);
    rmSync(this.spec.partsDir, { recursive: true, force: true });
    return { outputRows, errors: lines.length };
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
