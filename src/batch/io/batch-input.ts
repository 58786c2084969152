import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { CaliperError } from '../../errors.ts';
import { formatOfPath, type BatchFormat } from './batch-format.ts';
import { countParquetRows, ParquetReader } from './parquet-reader.ts';
import { readerSql, type ScanSource, sniffedReaderSql } from './input-scan.ts';
import type { InputFile } from './input-file.ts';
import type { RowRange, RowSource } from './source-row.ts';

export type { InputFile };

const HIVE_FOLDER = /^[^=]+=[^=]*$/;

function globPattern(name: string): RegExp {
  const escaped = name
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${escaped}$`);
}

function inputFile(path: string, format: BatchFormat | undefined, option: string, hive = false): InputFile {
  const detected = format ?? formatOfPath(path);
  if (!detected)
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${option}: cannot tell the format of ${path} from its extension (expected .parquet, .csv or .jsonl, the last two optionally .gz or .zst, or pass --input-format)`,
    );
  return hive ? { path, format: detected, hive } : { path, format: detected };
}

/** Data files under `dir`, recursively (hidden and _-prefixed names skipped), in path order. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.startsWith('_')) continue;
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...filesUnder(path));
    else if (stat.isFile()) out.push(path);
  }
  return out;
}

/**
 * The input files named by FILE, DIR (its data files, recursively; key=value folders are Hive partitions) or GLOB
 * (wildcards in the last path segment), in name order.
 */
export function expandInput(input: string, format?: BatchFormat): InputFile[] {
  const path = resolve(input);
  if (/[*?]/.test(basename(input))) {
    const dir = dirname(path);
    if (/[*?]/.test(dir))
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `--input: wildcards are supported in the file name only, got ${input}`,
      );
    if (!existsSync(dir)) throw new CaliperError('CALIPER_NOT_FOUND', `--input: folder ${dir} does not exist`);
    const pattern = globPattern(basename(path));
    const files = readdirSync(dir)
      .filter((f) => pattern.test(f) && statSync(join(dir, f)).isFile())
      .sort();
    if (files.length === 0) throw new CaliperError('CALIPER_NOT_FOUND', `--input: no file matches ${input}`);
    return files.map((f) => inputFile(join(dir, f), format, '--input'));
  }
  if (!existsSync(path)) throw new CaliperError('CALIPER_NOT_FOUND', `--input: ${input} does not exist`);
  if (statSync(path).isDirectory()) {
    const files = filesUnder(path).filter((f) => (format ? true : formatOfPath(f) !== undefined));
    if (files.length === 0)
      throw new CaliperError('CALIPER_NOT_FOUND', `--input: ${input} holds no .parquet, .csv or .jsonl file`);
    return files.map((f) =>
      inputFile(
        f,
        format,
        '--input',
        dirname(relative(path, f))
          .split(sep)
          .some((segment) => HIVE_FOLDER.test(segment)),
      ),
    );
  }
  return [inputFile(path, format, '--input')];
}

/**
 * Rows [range.start, range.end) of an input file, read from what the scorer scans (the file, or its staged copy), or
 * from an input file itself through DuckDB's reader for its format (small files read once: calibration, evaluation).
 */
export function openRowSource(source: ScanSource | InputFile, range: RowRange): Promise<RowSource> {
  if ('format' in source)
    return ParquetReader.open({ from: readerSql(source), path: source.path, text: source.format !== 'parquet' }, range);
  return ParquetReader.open(source, range);
}

/** Data rows in the file the scorer scans (from Parquet metadata), or in an input file as DuckDB reads it. */
export async function countRows(source: ScanSource | InputFile): Promise<number> {
  // A CSV through its dialect sniffed once per process (the job's other reads of it use the same).
  return countParquetRows('format' in source ? { from: await sniffedReaderSql(source), path: source.path } : source);
}
