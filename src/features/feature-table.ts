import { existsSync } from 'node:fs';
import { CaliperError } from '../errors.ts';
import type { FeatureFieldSpec, FeatureValue } from './feature-config.ts';

/**
 * A feature file (CSV with a header row, or Parquet) read in chunks: CSV with csv-parse (csv-feature-table.ts says
 * its rules), Parquet through DuckDB. CSV cells are read as text so keys keep their exact spelling (leading zeros and
 * all); values are typed by the field specs.
 */
export interface FeatureTable {
  path: string;
  columns: string[];
  rowCount: number;
  /** Chunks of rows as column-name → cell objects, in file order. */
  chunks(): AsyncIterable<Record<string, unknown>[]>;
  close(): void;
}

const sqlString = (value: string): string => `'${value.replace(/'/g, "''")}'`;

export function featureFileFormat(path: string): 'csv' | 'parquet' {
  if (/\.parquet$/i.test(path)) return 'parquet';
  if (/\.csv$/i.test(path)) return 'csv';
  throw new CaliperError('CALIPER_INVALID_INPUT', `${path}: expected a .csv or .parquet feature file`);
}

export async function openFeatureTable(path: string): Promise<FeatureTable> {
  if (!existsSync(path)) throw new CaliperError('CALIPER_NOT_FOUND', `${path}: feature file not found`);
  if (featureFileFormat(path) === 'csv') {
    const { openCsvFeatureTable } = await import('./csv-feature-table.ts');
    return openCsvFeatureTable(path);
  }
  const source = `read_parquet(${sqlString(path)})`;
  // DuckDB (about 0.4 s of CPU to load) is imported when a Parquet feature file is read, not by every start.
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const close = (): void => {
    connection.closeSync();
    instance.closeSync();
  };
  try {
    const counted = await connection.runAndReadAll(`SELECT count(*) FROM ${source}`);
    const rowCount = Number(counted.getRowsJS()[0]![0]);
    const probe = await connection.runAndReadAll(`SELECT * FROM ${source} LIMIT 0`);
    const columns = probe.columnNames();
    return {
      path,
      columns,
      rowCount,
      async *chunks() {
        const result = await connection.stream(`SELECT * FROM ${source}`);
        for await (const rows of result.yieldRowsJs()) {
          yield rows.map((cells) => {
            const record: Record<string, unknown> = {};
            for (let c = 0; c < columns.length; c++) record[columns[c]!] = cells[c];
            return record;
          });
        }
      },
      close,
    };
  } catch (error) {
    close();
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${path}: cannot read the feature file: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Converts a stored cell (file cell or Redis string) to the field's type; undefined when it is empty
 * or not of that type (the caller then uses the field's default).
 */
export function featureValueOf(field: FeatureFieldSpec, cell: unknown): FeatureValue | undefined {
  if (cell === null || cell === undefined || cell === '') return undefined;
  switch (field.type) {
    case 'number':
    case 'integer': {
      const n =
        typeof cell === 'number'
          ? cell
          : typeof cell === 'bigint'
            ? Number(cell)
            : typeof cell === 'string'
              ? Number(cell)
              : NaN;
      if (!Number.isFinite(n) || (field.type === 'integer' && !Number.isInteger(n))) return undefined;
      return n;
    }
    case 'boolean':
      if (typeof cell === 'boolean') return cell;
      if (cell === 'true' || cell === '1' || cell === 1) return true;
      if (cell === 'false' || cell === '0' || cell === 0) return false;
      return undefined;
    case 'string':
      return typeof cell === 'string' ? cell : String(cell);
  }
}
