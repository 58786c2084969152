import { basename } from 'node:path';
import { CaliperError } from '../../errors.ts';

/** The file formats batch scoring reads and writes. */
export type BatchFormat = 'parquet' | 'csv' | 'jsonl';

export const BATCH_FORMATS: readonly BatchFormat[] = ['parquet', 'csv', 'jsonl'];

const EXTENSIONS: Record<string, BatchFormat> = {
  parquet: 'parquet',
  pq: 'parquet',
  csv: 'csv',
  jsonl: 'jsonl',
  ndjson: 'jsonl',
};
/** A CSV or JSONL file compressed as a whole, as DuckDB's COPY and readers name it. */
export type TextCompression = 'gzip' | 'zstd';

/** Compressed text files, by extension: DuckDB decompresses them while reading and compresses them writing (CSV and JSONL only). */
const COMPRESSIONS = new Map<string, TextCompression>([
  ['gz', 'gzip'],
  ['zst', 'zstd'],
]);

/** The format a file name's extension names (data.csv, data.jsonl.gz, data.csv.zst), or undefined. */
export function formatOfPath(path: string): BatchFormat | undefined {
  const parts = basename(path).toLowerCase().split('.');
  if (parts.length < 2) return undefined;
  let extension = parts.pop()!;
  if (COMPRESSIONS.has(extension)) {
    if (parts.length < 2) return undefined;
    extension = parts.pop()!;
    const format = EXTENSIONS[extension];
    return format === 'parquet' ? undefined : format;
  }
  return EXTENSIONS[extension];
}

/** The whole-file compression a file name's last extension names (.gz gzip, .zst zstd), or undefined. */
export function compressionOfPath(path: string): TextCompression | undefined {
  const parts = basename(path).toLowerCase().split('.');
  return parts.length < 2 ? undefined : COMPRESSIONS.get(parts.pop()!);
}

export function fileExtension(format: BatchFormat): string {
  return `.${format}`;
}

export function parseBatchFormat(value: string, option: string): BatchFormat {
  if ((BATCH_FORMATS as readonly string[]).includes(value)) return value as BatchFormat;
  throw new CaliperError(
    'CALIPER_INVALID_INPUT',
    `${option}: expected one of ${BATCH_FORMATS.join(', ')}, got "${value}"`,
  );
}

/** Parquet compression codecs DuckDB writes. */
export const PARQUET_COMPRESSIONS = ['snappy', 'zstd', 'gzip', 'lz4', 'brotli', 'uncompressed'] as const;
export type ParquetCompression = (typeof PARQUET_COMPRESSIONS)[number];

export function parseParquetCompression(value: string): ParquetCompression {
  if ((PARQUET_COMPRESSIONS as readonly string[]).includes(value)) return value as ParquetCompression;
  throw new CaliperError(
    'CALIPER_INVALID_INPUT',
    `--compression: expected one of ${PARQUET_COMPRESSIONS.join(', ')}, got "${value}"`,
  );
}
