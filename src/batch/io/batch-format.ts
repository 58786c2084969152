import { extname } from 'node:path';
import { CaliperError } from '../../errors.ts';

/** The file formats batch scoring reads and writes. */
export type BatchFormat = 'parquet' | 'csv' | 'jsonl';

export const BATCH_FORMATS: readonly BatchFormat[] = ['parquet', 'csv', 'jsonl'];

const EXTENSIONS: Record<string, BatchFormat> = { '.parquet': 'parquet', '.pq': 'parquet', '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };

/** The format a file name's extension names, or undefined. */
export function formatOfPath(path: string): BatchFormat | undefined {
  return EXTENSIONS[extname(path).toLowerCase()];
}

export function fileExtension(format: BatchFormat): string {
  return `.${format}`;
}

export function parseBatchFormat(value: string, option: string): BatchFormat {
  if ((BATCH_FORMATS as readonly string[]).includes(value)) return value as BatchFormat;
  throw new CaliperError('CALIPER_INVALID_INPUT', `${option}: expected one of ${BATCH_FORMATS.join(', ')}, got "${value}"`);
}
