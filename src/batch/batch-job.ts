import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { compressionOfPath, type BatchFormat, type ParquetCompression } from './io/batch-format.ts';
import type { InputFile } from './io/batch-input.ts';
import type { ErrorPolicy } from './chunk-scorer.ts';
import type { OutputColumn } from './output-columns.ts';

/** Everything a batch job needs, as plain data: written to job.json and shared with workers through Redis. */
export interface BatchJobSpec {
  /** Derived from the fingerprint: the same command over the same inputs is the same job. */
  id: string;
  /** A model folder, or a registry URI pinned to a version number (models:/name/3). */
  model: string;
  /** Registry home the URI resolves against (workers may pass their own). */
  registry?: string;
  inputs: InputFile[];
  /** --output as given, resolved. */
  output: string;
  format: BatchFormat;
  /** Where part files and the manifest live: the output folder, or FILE.parts/ for a single-file output. */
  partsDir: string;
  /** Set when the output is one file: parts are merged into it at the end. */
  outputFile?: string;
  /** Set for an output folder partitioned by this output column (COL=VALUE/ folders): written from the parts at the end. */
  partitionBy?: string;
  /** Parquet output compression (default snappy). */
  compression?: ParquetCompression;
  errorsFile: string;
  /** Rows per inference batch. */
  batchSize: number;
  /** Input rows per committed part (one machine) or per shard (distributed). */
  partRows: number;
  onError: ErrorPolicy;
  keep?: string[];
  map: Record<string, string>;
  columns: OutputColumn[];
  mode: 'local' | 'distributed';
  instances?: number;
  threads?: number;
}

/** What must not change between a killed run and its restart; input files are pinned by size and mtime. */
export function jobFingerprint(spec: Omit<BatchJobSpec, 'id'>): string {
  const inputs = spec.inputs.map((file) => {
    const stat = statSync(file.path);
    return [file.path, file.format, stat.size, Math.trunc(stat.mtimeMs)];
  });
  const pinned = {
    model: spec.model,
    inputs,
    output: spec.output,
    format: spec.format,
    partRows: spec.partRows,
    onError: spec.onError,
    keep: spec.keep ?? null,
    map: spec.map,
    columns: spec.columns,
    mode: spec.mode,
    partitionBy: spec.partitionBy ?? null,
    compression: spec.compression ?? null,
  };
  return createHash('sha256').update(JSON.stringify(pinned)).digest('hex');
}

/**
 * The format of the part files: the output's, except that a partitioned output and a compressed CSV or JSONL file
 * (out.csv.gz) are assembled from Parquet parts by one DuckDB COPY (compressed parts appended would not make one stream).
 */
export function partFormat(spec: BatchJobSpec): BatchFormat {
  const compressed = spec.outputFile !== undefined && compressionOfPath(spec.outputFile) !== undefined;
  return spec.partitionBy || compressed ? 'parquet' : spec.format;
}
