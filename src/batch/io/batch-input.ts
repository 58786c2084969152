import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CaliperError } from '../../errors.ts';
import { formatOfPath, type BatchFormat } from './batch-format.ts';
import { countCsvRows, CsvReader } from './csv-reader.ts';
import { countJsonlRows, JsonlReader } from './jsonl-reader.ts';
import { countParquetRows, ParquetReader } from './parquet-reader.ts';
import type { RowRange, RowSource } from './source-row.ts';

export interface InputFile { path: string; format: BatchFormat }

function globPattern(name: string): RegExp {
  const escaped = name.replace(/[.+^${}()|\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${escaped}$`);
}

function inputFile(path: string, format: BatchFormat | undefined, option: string): InputFile {
  const detected = format ?? formatOfPath(path);
  if (!detected) throw new CaliperError('CALIPER_INVALID_INPUT', `${option}: cannot tell the format of ${path} from its extension (expected .parquet, .csv or .jsonl, or pass --input-format)`);
  return { path, format: detected };
}

/** The input files named by FILE, DIR (its data files) or GLOB (wildcards in the last path segment), in name order. */
export function expandInput(input: string, format?: BatchFormat): InputFile[] {
  const path = resolve(input);
  if (/[*?]/.test(basename(input))) {
    const dir = dirname(path);
    if (/[*?]/.test(dir)) throw new CaliperError('CALIPER_INVALID_INPUT', `--input: wildcards are supported in the file name only, got ${input}`);
    if (!existsSync(dir)) throw new CaliperError('CALIPER_NOT_FOUND', `--input: folder ${dir} does not exist`);
    const pattern = globPattern(basename(path));
    const files = readdirSync(dir).filter((f) => pattern.test(f) && statSync(join(dir, f)).isFile()).sort();
    if (files.length === 0) throw new CaliperError('CALIPER_NOT_FOUND', `--input: no file matches ${input}`);
    return files.map((f) => inputFile(join(dir, f), format, '--input'));
  }
  if (!existsSync(path)) throw new CaliperError('CALIPER_NOT_FOUND', `--input: ${input} does not exist`);
  if (statSync(path).isDirectory()) {
    const files = readdirSync(path).filter((f) => !f.startsWith('.') && !f.startsWith('_') && statSync(join(path, f)).isFile())
      .filter((f) => (format ? true : formatOfPath(f) !== undefined)).sort();
    if (files.length === 0) throw new CaliperError('CALIPER_NOT_FOUND', `--input: ${input} holds no .parquet, .csv or .jsonl file`);
    return files.map((f) => inputFile(join(path, f), format, '--input'));
  }
  return [inputFile(path, format, '--input')];
}

export function openRowSource(file: InputFile, range: RowRange): Promise<RowSource> {
  switch (file.format) {
    case 'parquet': return ParquetReader.open(file.path, range);
    case 'csv': return CsvReader.open(file.path, range);
    case 'jsonl': return JsonlReader.open(file.path, range);
  }
}

/** Data rows in the file (Parquet from its metadata; CSV and JSONL by a scan). */
export function countRows(file: InputFile): Promise<number> {
  switch (file.format) {
    case 'parquet': return countParquetRows(file.path);
    case 'csv': return countCsvRows(file.path);
    case 'jsonl': return countJsonlRows(file.path);
  }
}
